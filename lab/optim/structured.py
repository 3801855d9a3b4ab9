"""Optimizers with structured state or iterates: Adafactor, SM3, Muon, Schedule-Free AdamW.
"""

from __future__ import annotations

__all__: list[str] = []
