"""Trust, checked: run two optimizers side by side and say where, if anywhere, they part.

:func:`compare` feeds a candidate (an optax factory or transformation, or a PyTorch optimizer) and
its reference the same gradients and parameters, step by step, and compares their updates;
:func:`compare_trajectories` lets each move its own parameters on a real objective. docs/verify.md
is the guide: the defaults, the tolerances, how to read a report, the conventions it names.
"""

from lab.verify.compare import DEFAULT_DTYPES, DEFAULT_SEEDS, DEFAULT_STEPS, build, compare
from lab.verify.program import accepts_value, oscillating_schedule
from lab.verify.references import resolve_reference
from lab.verify.report import (
    CaseResult,
    Convention,
    Failure,
    VerifyReport,
    default_rtol,
    first_line,
    json_safe,
)
from lab.verify.stream import DEFAULT_SCALES, DEFAULT_TREE
from lab.verify.torch_candidates import TORCH_HINT, is_torch
from lab.verify.trajectories import TrajectoryReport, compare_trajectories

__all__ = [
    "CaseResult",
    "Convention",
    "DEFAULT_DTYPES",
    "DEFAULT_SCALES",
    "DEFAULT_SEEDS",
    "DEFAULT_STEPS",
    "DEFAULT_TREE",
    "Failure",
    "TORCH_HINT",
    "TrajectoryReport",
    "VerifyReport",
    "accepts_value",
    "build",
    "compare",
    "compare_trajectories",
    "default_rtol",
    "first_line",
    "is_torch",
    "json_safe",
    "oscillating_schedule",
    "resolve_reference",
]
