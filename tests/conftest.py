"""Strict numerics for every test, as equinox does it.

- dtype promotion is strict: float32 and float64 (or weak/strong types) never mix silently;
- rank promotion raises: no accidental broadcasting between arrays of different ranks;
- warnings are errors (see ``filterwarnings`` in pyproject.toml).

Tests that need float64 wrap their body in ``with jax.enable_x64(True):`` rather than turning
x64 on for the whole session, so the library is exercised under its real float32 default.
"""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield
