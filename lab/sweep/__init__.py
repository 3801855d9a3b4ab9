"""Sweeps: a whole comparison (hyperparameter grid x seeds) of one optimizer as one XLA program.

    config = SweepConfig.make(Problem("digits"), "adam", {"learning_rate": [1e-3, 3e-3]}, seeds=4)
    result = run_sweep(config)          # or reused from results/<name>-<hash>/ if already done

:mod:`~lab.sweep.config` says what a sweep is, :mod:`~lab.sweep.program` builds and caches its
compiled program, :mod:`~lab.sweep.run` runs it (devices, chunks, checkpoints, Ctrl-C) and
:mod:`~lab.sweep.store` saves and loads results. How it works: ``docs/sweeps.md``.
"""

from lab.problems import Problem
from lab.sweep import store
from lab.sweep.config import PENALTIES, SweepConfig
from lab.sweep.program import chunk_layout, clear_compile_cache
from lab.sweep.run import SweepInterrupted, run_sweep, weight_stats
from lab.sweep.store import SweepResult, result_dir

__all__ = ["PENALTIES", "Problem", "SweepConfig", "SweepInterrupted", "SweepResult", "chunk_layout",
           "clear_compile_cache", "result_dir", "run_sweep", "store", "weight_stats"]
