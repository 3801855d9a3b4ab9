"""Stored benchmark summaries: one JSON file per optimizer, workload and protocol settings, reused
while the optimizer's and the workload's identity are unchanged.

A summary lives in ``<root>/<workload>/<optimizer>-<settings hash>.json``: the file name says what
was asked (optimizer spec, workload, budget, seeds, search seed, search space, protocol version); the
``identity`` inside says what code answered (the optimizer's source hash, the workload's identity).
A summary whose identity differs from the code's now is stale: :func:`find` refuses it with
:class:`StaleSummary` unless asked to recompute. The committed baselines are such a root, read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from lab.bench.protocol import PROTOCOL_VERSION
from lab.bench.workloads import Workload
from lab.sweep import store

__all__ = ["BASELINES_DIR", "StaleSummary", "find", "path", "save", "settings_hash"]

BASELINES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "baselines")


class StaleSummary(ValueError):
    """A stored summary was computed by other code (the optimizer or the workload changed since)."""


def settings_hash(settings: dict) -> str:
    """12 hex digits naming the protocol settings (:func:`lab.bench.protocol.settings_dict`) and the
    protocol's version."""
    text = json.dumps({"settings": settings, "protocol": PROTOCOL_VERSION}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def path(root: str, optimizer: str, workload: Workload, settings: dict) -> str:
    """Where the summary of ``optimizer`` (its spec string) on ``workload`` under ``settings`` lives."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", str(optimizer))
    return os.path.join(root, workload.name, f"{slug}-{settings_hash(settings)}.json")


def identity(optimizer_source: str, workload: Workload) -> dict:
    """What a summary is tied to: the optimizer's source hash and the workload's identity."""
    return {"optimizer": optimizer_source, "workload": workload.identity()}


def find(roots: list[str], optimizer: str, optimizer_source: str, workload: Workload, settings: dict,
         recompute: bool = False) -> dict | None:
    """The stored summary for these settings from the first root that has one, or None (none stored,
    or a stale one with ``recompute``).

    Raises:
        StaleSummary: one line naming the file and what changed, when the stored summary's identity
            is not the code's now and ``recompute`` is False.
        ValueError: a stored file that cannot be read as a summary.
    """
    want = identity(optimizer_source, workload)
    for root in roots:
        file = path(root, optimizer, workload, settings)
        if not os.path.isfile(file):
            continue
        try:
            with open(file, encoding="utf-8") as f:
                summary = json.load(f)
            have = summary["identity"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"summary {file!r} cannot be read ({type(err).__name__}: {err}); "
                             f"remove it to recompute") from None
        if have == want:
            return summary
        if recompute:
            return None
        changed = " and ".join(k for k in ("optimizer", "workload") if have.get(k) != want[k])
        raise StaleSummary(f"summary {file!r} of {optimizer} on {workload.name} is stale: the {changed} "
                           f"changed since it was computed; rerun with --recompute to recompute it")
    return None


def save(root: str, summary: dict, workload: Workload) -> str:
    """Write ``summary`` (atomically) under ``root``; returns its path."""
    file = path(root, summary["optimizer"], workload, summary["settings"])
    os.makedirs(os.path.dirname(file), exist_ok=True)
    store.save_json(file, summary)
    return file
