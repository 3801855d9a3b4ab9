"""``lab figures --quick`` end to end: every figure is drawn, and the numbers behind the pictures agree
with what the literature agrees on, and an optimizer added to the catalogue is swept and drawn. Runs the
quick configs once (about a minute and a half, mostly compiling)."""

import dataclasses
import os

import jax
import numpy as np
import optax
import pytest
from matplotlib.figure import Figure

from lab import plotting
from lab.cli import main
from lab.experiments import get_experiment, load_record, record_dir, registry, run_experiment
from lab.optim import catalogue

EXPERIMENTS = registry()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    out, results = str(root / "figures"), str(root / "results")
    assert main(["figures", "--quick", "--quiet", "--out", out, "--results", results]) == 0
    return out, results


def _record(results: str, name: str):
    record = load_record(record_dir(results, name, get_experiment(name).make_config(quick=True)))
    assert record is not None, f"no saved record for {name}"
    return record


def test_every_figure_is_drawn(quick):
    out, _ = quick
    expected = {f for e in EXPERIMENTS.values() for f in e.figures}
    assert set(os.listdir(out)) == expected
    for name in expected:
        with open(os.path.join(out, name), "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(os.path.join(out, name)) > 20_000


def test_adam_at_its_default_lr_beats_sgd_at_the_same_lr(quick):
    # Kingma & Ba (2015), and every optimizer benchmark since: at lr 1e-3 (Adam's default) and the
    # same number of steps, plain SGD has barely moved while Adam has trained.
    record = _record(quick[1], "optimizers")
    final = {}
    for opt in ("adam", "sgd"):
        tune = record.sweeps[f"{opt}.tune"]
        at = tune.select(learning_rate=1e-3)
        final[opt] = tune.train_loss_eval[at, -1]
        assert at.sum() >= 2 and np.all(np.isfinite(final[opt]))
    assert final["adam"].max() < 0.5 * final["sgd"].min(), final


def test_l1_gives_more_near_zero_weights_than_l2_at_matched_strength(quick):
    sweeps = _record(quick[1], "regularization").sweeps
    l1, l2 = sweeps["l1"], sweeps["l2"]
    for strength in get_experiment("regularization").make_config(quick=True).strengths:
        sparse = l1.near_zero_fraction[l1.select(l1=strength)]
        dense = l2.near_zero_fraction[l2.select(l2=strength)]
        assert sparse.size == dense.size >= 2 and sparse.min() > dense.max(), (strength, sparse, dense)
    assert l1.near_zero_fraction[l1.select(l1=1e-3)].mean() > 0.25
    assert l2.near_zero_fraction[l2.select(l2=1e-3)].mean() < 0.05


def test_sigmoid_first_layer_gradient_vanishes_next_to_relu_with_he(quick):
    a = _record(quick[1], "activations").arrays
    sigmoid, relu = a["sigmoid.grad_norms"][:, 0], a["relu.grad_norms"][:, 0]  # (seeds,) first layer
    assert sigmoid.max() < 1e-3 * relu.min(), (sigmoid, relu)
    # ... while at the last layer they are of the same order: the gradient vanishes on the way down.
    assert a["sigmoid.grad_norms"][:, -1].mean() > 0.1 * a["relu.grad_norms"][:, -1].mean()


def test_small_normal_init_shrinks_activations_and_he_keeps_them_with_relu(quick):
    a = _record(quick[1], "initialization").arrays
    small, he = a["relu.small normal.stds"].mean(0), a["relu.he_normal.stds"].mean(0)
    assert small[-1] < 1e-5 * small[0] and 0.3 < he[-1] / he[0] < 3


def test_the_verification_matrix_passes_correct_optimizers_and_a_planted_bug_crosses_its_tolerance(quick):
    from lab.experiments import verification

    record = _record(quick[1], "verification")
    ratios, columns = verification.ratio_matrix(record)
    config = get_experiment("verification").make_config(quick=True)
    assert ratios.shape == (len(config.optimizers), len(columns)) == (3, 1)  # float32, constant lr
    assert np.all((ratios >= 0) & (ratios < 1)), ratios  # every hand-written optimizer within tolerance
    (bug,) = record.meta["planted"]
    assert bug["name"] == "every step x 1.001"
    ratio = record.arrays["planted0.step_errors"] / bug["tolerance"]
    # A step 1.001 times optax's is 1e-3 off at every step: about 41 times float32's tolerance.
    assert bug["first_step"] == 0 and np.all(ratio > 1)
    np.testing.assert_allclose(ratio * bug["tolerance"], 1e-3, rtol=1e-2)
    figure = get_experiment("verification").draw(record)["11_verification.png"]
    legend = figure.axes[1].get_legend().get_texts()
    assert any("first crosses at step 0" in t.get_text() for t in legend)


def test_figures_again_redraws_from_saved_results_without_training(quick, monkeypatch):
    out, results = quick

    def must_not_run(config, ctx):
        raise AssertionError("training rerun although the results are saved")

    for name, e in EXPERIMENTS.items():
        if e.reuse:
            monkeypatch.setitem(EXPERIMENTS, name, dataclasses.replace(e, run=must_not_run))
    drawn = {}
    for f in sorted(os.listdir(out)):
        with open(os.path.join(out, f), "rb") as png:
            drawn[f] = png.read()
    # Every figure goes: half are deleted, the others replaced by junk; all must come back as they were.
    for i, f in enumerate(drawn):
        if i % 2:
            os.unlink(os.path.join(out, f))
        else:
            with open(os.path.join(out, f), "wb") as png:
                png.write(b"junk")
    assert main(["figures", "--quick", "--quiet", "--out", out, "--results", results]) == 0
    assert sorted(os.listdir(out)) == sorted(drawn)
    for f, content in drawn.items():
        with open(os.path.join(out, f), "rb") as png:
            assert png.read() == content, f"{f} was not redrawn as it was drawn from the same results"


def _toy_sgd(learning_rate):
    """Plain SGD written out by hand: updates = -learning_rate * g."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: -learning_rate * g, updates), state

    return optax.GradientTransformation(init, update)


@pytest.fixture
def toy_sgd():
    entry = catalogue.register(catalogue.Entry("toy_sgd", _toy_sgd, reference=optax.sgd,
                                               verify=({"learning_rate": 0.1},), featured=True))
    try:
        yield entry
    finally:
        catalogue.unregister("toy_sgd")


def test_a_registered_optimizer_is_swept_and_drawn_in_its_own_colour(quick, toy_sgd):
    e = EXPERIMENTS["optimizers"]
    assert "toy_sgd" in e.make_config().optimizers  # featured: in the default selection
    config = dataclasses.replace(e.make_config(quick=True), optimizers=("sgd", "toy_sgd"))
    # SGD's sweeps are those of the quick figures (reused from their store); toy_sgd's are new.
    record = run_experiment("optimizers", config, results_dir=quick[1])
    tune, final = record.sweeps["toy_sgd.tune"], record.sweeps["toy_sgd.final"]
    assert tune.config.optimizer == final.config.optimizer == "toy_sgd"
    assert final.config.grid == (("learning_rate", (tune.best("test_loss")["learning_rate"],)),)
    # Hand-written SGD is SGD: on the same batches and seeds it trains exactly like the lab's.
    np.testing.assert_allclose(tune.train_loss_eval, record.sweeps["sgd.tune"].train_loss_eval, rtol=1e-6)
    figure = e.draw(record)["01_optimizers.png"]
    color, sgd_color = catalogue.color("toy_sgd"), catalogue.color("sgd")
    assert color != sgd_color
    for ax in figure.axes[:2]:
        colors = {line.get_label().split(" (")[0]: line.get_color() for line in ax.get_lines()}
        assert colors["toy_sgd"] == color and colors["SGD"] == sgd_color
    cells = figure.axes[2].tables[0].get_celld()  # the steps-to-target table: (row, column) -> cell
    names = {cells[i, 0].get_text().get_text(): cells[i, 0].get_text().get_color() for i in (1, 2)}
    assert names == {"SGD": sgd_color, "toy_sgd": color}


def test_seed_band_ignores_diverged_seeds_without_warnings():
    values = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [2.0, 4.0, np.nan]])
    mean, lo, hi = plotting.seed_band(values)
    np.testing.assert_allclose(mean[:2], [2.0, 3.0])
    np.testing.assert_allclose(lo[:2], [1.0, 2.0])
    np.testing.assert_allclose(hi[:2], [3.0, 4.0])
    assert np.isnan(mean[2]) and np.isnan(lo[2]) and np.isnan(hi[2])


def test_a_diverged_run_is_marked_and_counted_not_dropped():
    fig = Figure()
    ax = fig.subplots()
    values = np.array([[3.0, 2.0, 1.0], [3.0, 5.0, np.nan]])
    plotting.curve(ax, np.array([0, 10, 20]), values, color="k", label="sgd",
                   diverged_step=np.array([-1, 15]))
    labels = [line.get_label() for line in ax.get_lines()]
    assert "sgd (1/2 diverged, x where)" in labels
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 10 and marks[0].get_ydata()[0] == 5.0
