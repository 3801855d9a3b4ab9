"""The CNN sweep benchmark (benchmarks/cnn.py) at a tiny size: what it reports, that the three
implementations train the same model, and its FLOP count against XLA's own. No timing is asserted."""

import importlib.util
import math
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.models import count_params
from lab.problems import data_loss, init_params, predict

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_cnn", ROOT / "benchmarks" / "cnn.py")
cnn = importlib.util.module_from_spec(_spec)
sys.modules["bench_cnn"] = cnn
_spec.loader.exec_module(cnn)

TINY = dict(runs=2, steps=5, batch=8, baseline_runs=1)


@pytest.fixture(scope="module")
def report():
    # optax.adam's bias correction raises a python float to an int32 count, which strict promotion
    # refuses; the baseline is optax as users run it, so it runs under JAX's standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        return cnn.measure_cnn(**TINY)


def test_reports_every_time_rate_and_ratio(report):
    assert (report["runs"], report["steps"], report["batch"]) == (2, 5, 8)
    for key in ("lab_seconds", "lab_cpu_seconds", "lab_compile_seconds", "optax_loop_seconds",
                "torch_seconds", "lab_gflops", "conv_gflops", "conv_matmul_gflops", "conv_one_run_gflops",
                "optax_loop_gflops", "torch_gflops", "speedup_vs_optax_loop", "speedup_vs_torch",
                "conv_rate_fraction", "conv_matmul_rate_fraction", "conv_rate_fraction_cpu"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert all(v > 0 for v in report["cpu_microseconds_per_run_step"].values())
    r = report
    assert r["speedup_vs_torch"] == pytest.approx(r["torch_seconds"] / r["lab_seconds"], rel=0.05)
    assert r["conv_rate_fraction"] == pytest.approx(r["lab_gflops"] / r["conv_gflops"], rel=0.05)
    assert report["torch_threads"] in (1, os.cpu_count())
    assert report["baseline_runs_timed"] == 1


def test_the_three_implementations_train_the_same_model(report):
    model = report["model"]
    lab_params = count_params(init_params(cnn.PROBLEM, jax.random.key(0)))
    assert model["params"] == model["torch_params"] == lab_params == 10826
    losses = report["same_training"]["first_losses"]
    assert set(losses) == {"lab", "optax_loop", "torch"}
    np.testing.assert_allclose(losses["torch"], losses["lab"], rtol=cnn.LOSS_TOLERANCE)
    np.testing.assert_allclose(losses["optax_loop"], losses["lab"], rtol=cnn.LOSS_TOLERANCE)
    assert len(set(losses["lab"])) == 3  # three different steps, so the updates agree too


def test_torch_model_has_the_labs_layers():
    torch = pytest.importorskip("torch")
    params = init_params(cnn.PROBLEM, jax.random.key(3))
    model = cnn.torch_model(torch, params)
    x = np.array(jax.random.normal(jax.random.key(4), (6, 40)), np.float32)
    with torch.no_grad():
        out = model(torch.as_tensor(x)[:, None, :]).numpy()
    lab = np.asarray(predict(cnn.PROBLEM, params, jnp.asarray(x)))
    np.testing.assert_allclose(out, lab, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [8, 128])
def test_flop_count_matches_xlas_count_of_the_products(batch):
    """XLA's cost analysis of one run's gradient counts the same products plus the elementwise ops
    (bias, ReLU, pooling, softmax, the pads of im2col's transpose): a few percent more, never less.
    Counting the input gradients twice, or leaving them out, would be off by a quarter or more."""
    params = init_params(cnn.PROBLEM, jax.random.key(0))
    x, y = jnp.zeros((batch, 40), jnp.float32), jnp.zeros((batch,), jnp.int32)
    grad = jax.jit(jax.grad(lambda p: data_loss(cnn.PROBLEM, p, x, y)))
    cost = grad.lower(params).compile().cost_analysis()
    xla = (cost[0] if isinstance(cost, list) else cost)["flops"]
    ours = cnn.train_flops_per_step(batch)
    assert ours["total"] == ours["conv"] + ours["head"]
    assert 0.9 * xla <= ours["total"] <= xla


@pytest.mark.parametrize("name", ["runs", "steps", "batch", "baseline_runs"])
def test_bad_sizes_are_refused(name):
    with pytest.raises(ValueError, match=rf"{name}: expected a positive integer, got 0"):
        cnn.measure_cnn(**{**TINY, name: 0})
