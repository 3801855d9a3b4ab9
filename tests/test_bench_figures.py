"""``lab bench``'s figures: drawn from summaries, the plotted profiles equal the performance profiles
(and hand-computed values), never-reached seeds sit at the axis edge, each optimizer in its catalogue
colour, the budget curves are the summaries' expected-best lists; and the command writes them."""

import os

import numpy as np
import pytest
from matplotlib.colors import to_hex

from lab import cli
from lab.bench import figures, profiles
from lab.optim import catalogue

PNG = b"\x89PNG\r\n\x1a\n"


def summary(optimizer, workload, steps, expected_best, *, loss=False, target=0.8):
    return {"optimizer": optimizer, "workload": workload, "steps_to_target": steps,
            "expected_best_validation": expected_best, "metric": "loss" if loss else "accuracy",
            "higher_is_better": not loss, "target": target,
            "settings": {"budget": len(expected_best), "seeds": len(steps)}}


# Medians over seeds: on "acc" adam 12, sgd 30, lion never; on "nqm" adam 200, sgd 60, lion 400.
# Ratios to the fastest: acc (1, 2.5, inf), nqm (10/3, 1, 20/3).
SUMMARIES = [
    summary("adam", "acc", [10, 12, 14], [0.7, 0.8, 0.85]),
    summary("sgd", "acc", [20, None, 30], [0.6, 0.7, 0.8]),
    summary("optax:lion", "acc", [None, None, None], [0.5, 0.55, 0.6]),
    summary("adam", "nqm", [100, 200, 300], [60.0, 55.0, 52.0], loss=True, target=55.0),
    summary("sgd", "nqm", [50, 60, 70], [58.0, 54.0, 51.0], loss=True, target=55.0),
    summary("optax:lion", "nqm", [400, None, 380], [7e9, 60.0, 56.0], loss=True, target=55.0),
]
STEPS = {"acc": 40, "nqm": 400}


@pytest.fixture(scope="module")
def drawn():
    return figures.draw(SUMMARIES, steps=STEPS)


def lines(ax, prefix):
    return {line.get_gid().split(":", 1)[1]: line for line in ax.get_lines()
            if (line.get_gid() or "").startswith(prefix + ":")}


def test_saved_as_pngs(tmp_path, drawn):
    paths = figures.save(drawn, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == list(figures.FILES)
    for p in paths:
        assert os.path.dirname(p) == str(tmp_path / "figures")
        with open(p, "rb") as f:
            assert f.read(8) == PNG
    assert sorted(os.listdir(tmp_path / "figures")) == sorted(figures.FILES)  # no temporary files left


def plotted_profile(line, taus):
    """The value of a post-step line at each tau."""
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert line.get_drawstyle() == "steps-post"
    return y[np.searchsorted(x, taus, side="right") - 1]


def test_profiles_are_the_performance_profiles(drawn):
    ax = drawn["bench_profiles.png"].axes[0]
    curves = lines(ax, "profile")
    assert set(curves) == {"adam", "sgd", "optax:lion"}
    taus = np.array([1.0, 1.5, 2.5, 3.0, 10 / 3, 3.5, 4.0])
    by_hand = {"adam": [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0], "sgd": [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
               "optax:lion": [0.0] * 7}
    optimizers, _, steps = figures.steps_array(SUMMARIES)
    reference = profiles.performance_profile(
        profiles.performance_ratios(profiles.median_steps(steps, axis=-1)), taus)
    for i, name in enumerate(optimizers):
        np.testing.assert_allclose(plotted_profile(curves[name], taus), by_hand[name])
        np.testing.assert_allclose(plotted_profile(curves[name], taus), reference[i])
    assert ax.get_xlim() == (1.0, profiles.TAU_MAX)
    # the legend gives each score: adam (1 + (4 - 10/3) / 3) / 2, sgd ((4 - 2.5) / 3 + 1) / 2, lion 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("SGD: score 0.75 ") and labels[1].startswith("Adam: score 0.61 ")
    assert labels[2].startswith("optax:lion: score 0.00 [0.00, 0.00]")


def test_never_reached_at_the_edge(drawn):
    acc, nqm = drawn["bench_steps.png"].axes[:2]
    edge = figures.EDGE * STEPS["acc"]
    assert acc.get_xlim()[1] == pytest.approx(edge)
    rows = dict(zip([t.get_text() for t in acc.get_yticklabels()], acc.get_yticks(), strict=True))
    never, medians = lines(acc, "never"), lines(acc, "median")
    assert set(never) == {"sgd", "optax:lion"}  # adam reached it on every seed
    np.testing.assert_allclose(never["sgd"].get_xdata(), [edge])  # one seed of three never did
    np.testing.assert_allclose(never["sgd"].get_ydata(), [rows["SGD"]])
    np.testing.assert_allclose(never["optax:lion"].get_xdata(), [edge] * 3)
    np.testing.assert_allclose(never["optax:lion"].get_ydata(), [rows["optax:lion"]] * 3)
    assert not never["sgd"].get_clip_on()
    assert set(medians) == {"adam", "sgd"}  # lion's median seed never reached it: no median drawn
    np.testing.assert_allclose(medians["sgd"].get_xdata(), [30.0])
    np.testing.assert_allclose(lines(nqm, "never")["optax:lion"].get_xdata(), [figures.EDGE * STEPS["nqm"]])
    np.testing.assert_allclose(lines(nqm, "median")["optax:lion"].get_xdata(), [400.0])


def test_catalogue_colours(drawn):
    names = ["adam", "sgd", "optax:lion"]
    want = {n: to_hex(catalogue.color(n)) for n in names}
    assert len(set(want.values())) == 3
    assert want["adam"] == to_hex(catalogue.get("adam").color)  # the entry's declared colour
    for file, prefix in (("bench_profiles.png", "profile"), ("bench_steps.png", "median"),
                         ("bench_steps.png", "never"), ("bench_budget.png", "budget")):
        for ax in drawn[file].axes:
            for name, line in lines(ax, prefix).items():
                assert to_hex(line.get_color()) == want[name], (file, name)


def test_budget_curves_are_the_expected_best(drawn):
    acc, nqm = drawn["bench_budget.png"].axes[:2]
    for ax, workload in ((acc, "acc"), (nqm, "nqm")):
        curves = lines(ax, "budget")
        for s in SUMMARIES:
            if s["workload"] == workload:
                np.testing.assert_allclose(curves[s["optimizer"]].get_xdata(), [1, 2, 3])
                np.testing.assert_allclose(curves[s["optimizer"]].get_ydata(), s["expected_best_validation"])
    assert acc.get_yscale() == "linear" and nqm.get_yscale() == "log"  # a loss spanning decades
    # the titles say what was measured
    title = drawn["bench_budget.png"]._suptitle.get_text()
    assert "2 workloads: acc, nqm" in title and "3 tuning trials, 3 seeds" in title and "quick" not in title


@pytest.mark.parametrize("bad, message", [
    (SUMMARIES[:-1], "no summary of optax:lion on nqm"),
    (SUMMARIES + SUMMARIES[:1], "adam on acc is given twice"),
    ([], "expected at least one summary"),
])
def test_bad_summaries(bad, message):
    with pytest.raises(ValueError, match=message):
        figures.draw(bad)


def test_lab_bench_draws_its_figures(tmp_path, capsys):
    # The configuration of tests/test_cli_bench.py (same compiled programs): optax's SGD beside the
    # committed quick baseline of Adam on the quick softmax workload (budget 3, 2 seeds).
    out = tmp_path / "bench"
    args = ["bench", "--candidate", "optax:sgd", "--optimizers", "adam", "--workloads", "digits_softmax",
            "--quick", "--budget", "3", "--seeds", "2", "--out", str(out), "--quiet"]
    assert cli.main([*args, "--no-figures"]) == 0
    assert "figures" not in capsys.readouterr().err and not (out / "figures").exists()
    assert cli.main([*args, "--json"]) == 0  # summaries reused, figures drawn; stdout stays JSON
    captured = capsys.readouterr()
    assert captured.out.startswith("{") and captured.out.count("\n") == 1
    paths = [str(out / "figures" / f) for f in figures.FILES]
    assert captured.err.strip().endswith(": " + ", ".join(paths))
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == PNG
