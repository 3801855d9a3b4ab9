"""Device memory for sweeps: the budget one device may give a compiled program (:func:`budget_bytes`,
``LAB_SWEEP_MEMORY``), what a compiled program needs by XLA's own count (:func:`program_bytes`), and
how many runs of a sweep fit in one block (:func:`runs_per_block`).
"""

from __future__ import annotations

import os
import re

import jax

__all__ = ["budget_bytes", "program_bytes", "runs_per_block"]


def budget_bytes(value: int | str | None = None) -> int:
    """Bytes that one device may hold for a sweep's compiled program: ``value`` (bytes, or a string
    such as ``"512M"`` or ``"4G"``, powers of 1024), else the environment variable
    ``LAB_SWEEP_MEMORY``, else half the memory of an accelerator, or a quarter of the RAM shared by
    the CPU devices.

    Raises:
        ValueError: ``value`` (or ``LAB_SWEEP_MEMORY``) is not a positive amount of bytes.
    """
    source = "memory_budget"
    if value is None and os.environ.get("LAB_SWEEP_MEMORY"):
        value, source = os.environ["LAB_SWEEP_MEMORY"], "LAB_SWEEP_MEMORY"
    if value is None:
        stats = jax.local_devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"]) // 2
        try:
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not a POSIX system
            ram = 16 << 30
        return ram // 4 // jax.local_device_count()
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
    if isinstance(value, bool) or not isinstance(value, int | str) or not match or float(match[1]) < 1:
        raise ValueError(f"{source}: expected a positive number of bytes such as 2000000000, '512M' or "
                         f"'4G', got {value!r}")
    return int(float(match[1]) * 1024 ** "_KMGT".index(match[2].upper() or "_"))


def program_bytes(*compiled) -> int | None:
    """Bytes one device holds while the largest of the ``compiled`` functions runs, by XLA's memory
    analysis: arguments + outputs - donated buffers + temporaries. None where the backend (or a
    function that is not a compiled one) gives none."""
    need = 0
    for fn in compiled:
        m = fn.memory_analysis() if hasattr(fn, "memory_analysis") else None
        if m is None:
            return None
        need = max(need, m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
                   + m.temp_size_in_bytes)
    return need


def runs_per_block(runs: int, devices: int, need: int | None, budget: int) -> int:
    """Runs per block: all ``runs`` if the program for them (``need`` bytes per device, None: not
    known) fits ``budget``, else as many as fit at the same bytes per run, a multiple of
    ``devices`` (at least one per device)."""
    padded = -(-runs // devices) * devices
    if need is None or need <= budget or padded == devices:
        return runs
    return max(devices, int(budget / (need / padded)) // devices * devices)
