"""Strict numerics for every test, as equinox does it.

- dtype promotion is strict: float32 and float64 (or weak/strong types) never mix silently;
- rank promotion raises: no accidental broadcasting between arrays of different ranks;
- warnings are errors (see ``filterwarnings`` in pyproject.toml).

Compiled programs are kept in the lab's persistent compile cache (``LAB_COMPILE_CACHE``, default
``~/.cache/lab/jax``; ``off`` turns it off), so a second run of the suite compiles little.

Tests that need float64 wrap their body in ``with jax.enable_x64(True):`` rather than turning
x64 on for the whole session, so the library is exercised under its real float32 default.
"""

import jax
import pytest

from lab import compile_cache

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
compile_cache.configure()


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
