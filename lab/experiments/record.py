"""An experiment's record: what its runner produced, saved so that its figures redraw without training.

A :class:`Record` holds named :class:`lab.sweep.SweepResult` s (``record.sweeps["adam.tune"]``),
other arrays (``record.arrays``, for what is not a sweep: paths on a surface, gradient norms at
init) and JSON-able ``meta`` (``meta["summary"]`` is ``lab run``'s table). It is saved under
``<results>/experiments/<name>-<config hash>/``:

- ``sweeps/<i>-<key>/``: each sweep, saved by the sweep store (without final params);
- ``record.npz``: the other arrays;
- ``record.json``: meta, the sweeps' keys and directories, and the SHA-256 of ``record.npz`` and of
  every sweep's sidecar. It is written last and removed first, so it marks the record complete: a
  half-written record, or one whose files changed since, is never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lab.sweep import SweepResult, store

RECORD_VERSION = 3  # bump when a runner's record changes shape, so stale records are not reused
RECORD_NPZ, RECORD_JSON, SWEEPS_DIR = "record.npz", "record.json", "sweeps"


@dataclass
class Record:
    """What a runner produces: named sweeps, other ``name -> array`` and JSON-able ``meta``."""

    sweeps: dict[str, SweepResult] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def config_hash(name: str, config) -> str:
    """12 hex digits identifying an experiment's record: its name, config and record version."""
    text = json.dumps({"name": name, "config": dataclasses.asdict(config), "version": RECORD_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record_dir(results_dir: str, name: str, config) -> str:
    """Where experiment ``name``'s record for ``config`` lives under ``results_dir``."""
    return os.path.join(results_dir, "experiments", f"{name}-{config_hash(name, config)}")


def _sweep_dirname(i: int, key: str) -> str:
    return f"{i:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', key)}"


def save_record(directory: str, record: Record) -> None:
    """Save ``record`` into ``directory``: sweeps and arrays first, ``record.json`` last."""
    side = os.path.join(directory, RECORD_JSON)
    if os.path.exists(side):  # a rerun: unmark the old record before replacing it
        os.unlink(side)
    shutil.rmtree(os.path.join(directory, SWEEPS_DIR), ignore_errors=True)
    sweeps = []
    for i, (key, result) in enumerate(record.sweeps.items()):
        sub = os.path.join(SWEEPS_DIR, _sweep_dirname(i, key))
        store.save(os.path.join(directory, sub), dataclasses.replace(result, final_params=None))
        sweeps.append({"key": key, "dir": sub,
                       "sha256": store.sha256(os.path.join(directory, sub, store.RESULTS_JSON))})
    digest = store.save_npz(os.path.join(directory, RECORD_NPZ), record.arrays)
    store.save_json(side, {"complete": True, "version": RECORD_VERSION, "npz_sha256": digest,
                           "sweeps": sweeps, "meta": record.meta})


def load_record(directory: str) -> Record | None:
    """The complete record in ``directory``, or None if there is none (or it is incomplete or changed)."""
    npz, side = os.path.join(directory, RECORD_NPZ), os.path.join(directory, RECORD_JSON)
    if not (os.path.exists(npz) and os.path.exists(side)):
        return None
    try:
        with open(side, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):  # truncated or unreadable: not a complete record
        return None
    if not (isinstance(saved, dict) and saved.get("complete") is True
            and saved.get("version") == RECORD_VERSION and saved.get("npz_sha256") == store.sha256(npz)):
        return None
    sweeps = {}
    for entry in saved["sweeps"]:
        sub = os.path.join(directory, entry["dir"])
        sub_side = os.path.join(sub, store.RESULTS_JSON)
        if not (store.is_complete(sub) and store.sha256(sub_side) == entry["sha256"]):
            return None
        sweeps[entry["key"]] = store.load(sub)
    return Record(sweeps, store.load_npz(npz), saved["meta"])
