"""The gallery's benchmark figure (``lab run bench``, ``13_bench.png``): drawn from stored summaries with
nothing trained, its profiles are the performance profiles of the summaries' medians, its table holds the
summaries' numbers ('-' where the median seed never reached the target), and missing or stale summaries
give one line that says how to compute them, and a figure that says so."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgba

from lab.bench import baselines, figures, profiles, protocol, summaries
from lab.bench.protocol import PROTOCOL_VERSION, Settings
from lab.bench.workloads import WORKLOADS
from lab.cli import main
from lab.experiments import bench, registry
from lab.experiments.common import Context
from lab.optim import catalogue

SETTINGS = Settings(budget=2, seeds=3)
TARGETS = {"digits_softmax": 0.9, "nqm": 55.0}
# Per seed, and the median over seeds as the protocol stores it: on digits_softmax adam 12, sgd 30, lion
# never; on nqm adam 200, sgd 60, lion 400. Ratios to the fastest: (1, 2.5, inf) and (10/3, 1, 20/3).
STEPS = {("adam", "digits_softmax"): ([10, 12, 14], 12), ("sgd", "digits_softmax"): ([20, None, 30], 30),
         ("lion", "digits_softmax"): ([None, None, None], None), ("adam", "nqm"): ([100, 200, 300], 200),
         ("sgd", "nqm"): ([50, 60, 70], 60), ("lion", "nqm"): ([400, None, 380], 400)}
CONFIG = bench.Config(optimizers=("adam", "sgd", "lion"), workloads=tuple(TARGETS), settings=SETTINGS)


def write_summary(root: str, optimizer: str, workload: str) -> None:
    """A summary as ``lab.bench.protocol.evaluate`` writes it, tied to the code's identities now."""
    spec, w = protocol.resolve(optimizer), WORKLOADS[workload]
    per_seed, median = STEPS[optimizer, workload]
    stats = {"mean": 0.9, "std": 0.01, "per_seed": [0.9] * 3}
    summary = {"protocol": PROTOCOL_VERSION, "optimizer": str(spec), "workload": workload,
               "identity": {"optimizer": spec.source, "workload": w.identity()},
               "settings": protocol.settings_dict(SETTINGS, protocol.search_space(spec)), "metric": w.metric,
               "higher_is_better": w.higher_is_better, "target": TARGETS[workload],
               "steps_to_target": per_seed, "median_steps_to_target": median, "validation": stats,
               "test": stats, "fraction_trials_reaching": 0.5, "expected_best_validation": [0.8, 0.9],
               "selected_trial": 0, "best_hyperparameters": {"learning_rate": 0.01}, "trials": [],
               "step_seconds": 1e-5, "time_to_target_seconds": None if median is None else median * 1e-5,
               "compute_seconds": 1.0}
    summaries.save(root, summary, w)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("baselines"))
    for optimizer, workload in STEPS:
        write_summary(root, optimizer, workload)
    return root


def given_targets(workloads):
    return {w.name: TARGETS[w.name] for w in workloads if w.name in TARGETS}


@pytest.fixture(autouse=True)
def targets(monkeypatch):
    """The targets the summaries were computed for (the committed ones may not be there yet)."""
    monkeypatch.setattr(baselines, "load_targets", given_targets)


@pytest.fixture(scope="module")
def drawn(stored):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(baselines, "load_targets", given_targets)
        record = bench.run(dataclasses.replace(CONFIG, directory=stored), Context())
    figure = bench.draw(record)["13_bench.png"]
    profiles_ax, table_ax = figure.axes[:2]
    return record, figure, profiles_ax, table_ax


def medians_on_file(root: str) -> np.ndarray:
    """(optimizers, workloads) medians read from the summaries' files, in CONFIG's order."""
    out = np.full((3, 2), np.inf)
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f)) as fh:
                s = json.load(fh)
            m = s["median_steps_to_target"]
            out[CONFIG.optimizers.index(s["optimizer"]), CONFIG.workloads.index(s["workload"])] = \
                np.inf if m is None else m
    return out


def plotted_profile(line, taus):
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert line.get_drawstyle() == "steps-post"
    return y[np.searchsorted(x, taus, side="right") - 1]


def test_profiles_are_the_performance_profiles_of_the_medians(stored, drawn):
    _, _, ax, _ = drawn
    curves = {line.get_gid().split(":", 1)[1]: line for line in ax.get_lines()
              if (line.get_gid() or "").startswith("profile:")}
    assert set(curves) == set(CONFIG.optimizers)
    taus = np.array([1.0, 1.5, 2.5, 3.0, 10 / 3, 3.5, 4.0])
    reference = profiles.performance_profile(profiles.performance_ratios(medians_on_file(stored)), taus)
    by_hand = {"adam": [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0], "sgd": [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
               "lion": [0.0] * 7}
    for i, name in enumerate(CONFIG.optimizers):
        np.testing.assert_allclose(plotted_profile(curves[name], taus), reference[i])
        np.testing.assert_allclose(plotted_profile(curves[name], taus), by_hand[name])
        assert to_hex(curves[name].get_color()) == to_hex(catalogue.color(name))
    assert ax.get_xlim() == (1.0, profiles.TAU_MAX) and ax.get_xlabel() and ax.get_ylabel()


def test_the_table_holds_the_summaries_numbers(stored, drawn):
    _, _, profiles_ax, ax = drawn
    cells = {k: c.get_text().get_text() for k, c in ax.tables[0].get_celld().items()}
    # best first: sgd ((4 - 2.5) / 3 + 1) / 2 = 0.75, adam (1 + (4 - 10/3) / 3) / 2 = 0.61, lion 0
    assert [cells[i, 0] for i in (1, 2, 3)] == ["SGD", "Adam", "Lion"]
    steps = np.array([[[np.inf if v is None else v for v in STEPS[o, w][0]] for w in CONFIG.workloads]
                      for o in CONFIG.optimizers])
    boot = profiles.bootstrap(steps, 0, resamples=1000)
    np.testing.assert_allclose(boot.score, [11 / 18, 0.75, 0.0])
    for row, i in ((1, 1), (2, 0), (3, 2)):
        assert cells[row, 1] == f"{boot.score[i]:.2f} [{boot.score_low[i]:.2f}, {boot.score_high[i]:.2f}]"
        assert cells[row, 2] == f"{boot.rank[i]:g} [{boot.rank_low[i]:g}, {boot.rank_high[i]:g}]"
    assert cells[1, 1].startswith("0.75 [") and cells[1, 2].startswith("1 [")
    assert cells[3, 1] == "0.00 [0.00, 0.00]" and cells[3, 2] == "3 [3, 3]"
    # per workload: the median steps on file
    medians = medians_on_file(stored)
    for row, i in ((1, 1), (2, 0), (3, 2)):
        for j in range(2):
            want = "-" if np.isinf(medians[i, j]) else f"{medians[i, j]:g}"
            assert cells[row, 3 + j] == want
    assert cells[1, 3] == "30" and cells[2, 4] == "200"
    assert "acc. ≥ 0.9" in cells[0, 3] and "loss ≤ 55" in cells[0, 4] and "softmax" in cells[0, 3]
    # the profiles' legend gives the same scores as the table
    legend = [t.get_text() for t in profiles_ax.get_legend().get_texts()]
    assert legend == [f"{cells[r, 0]}: score {cells[r, 1]}" for r in (1, 2, 3)]
    # the names in their catalogue colours
    for row, name in ((1, "sgd"), (2, "adam"), (3, "lion")):
        assert to_hex(ax.tables[0][row, 0].get_text().get_color()) == to_hex(catalogue.color(name))


def test_never_reached_is_a_dash_on_grey_and_cells_are_shaded_by_ratio(drawn):
    _, _, _, ax = drawn
    table = ax.tables[0]
    assert table[3, 3].get_text().get_text() == "-"  # lion never reaches digits_softmax's target
    assert table[3, 3].get_facecolor() == to_rgba(figures.NEVER_SHADE)
    shades = figures.ratio_shades()
    assert table[2, 3].get_facecolor() == pytest.approx(shades.to_rgba(1.0))  # adam: the fastest
    assert table[1, 3].get_facecolor() == pytest.approx(shades.to_rgba(2.5))  # sgd: 30 / 12
    assert table[1, 4].get_facecolor() == pytest.approx(shades.to_rgba(1.0))  # sgd: the fastest on nqm
    assert table[3, 4].get_facecolor() == to_rgba("white")  # lion: 400 / 60, beyond 4x
    assert shades.to_rgba(1.0) != shades.to_rgba(2.5) != shades.to_rgba(4.0)


def test_the_title_says_what_was_measured(drawn):
    record, figure, _, _ = drawn
    title = figure._suptitle.get_text()
    assert "3 built-in optimizers on the 2 workloads" in title
    assert "steps to each workload's validation target" in title
    assert "budget 2 tuning trials" in title and "3 seeds" in title
    assert "python scripts/bench_baselines.py" in title
    rows = record.meta["summary"]["rows"]  # lab run's table: the same rows, by catalogue name
    assert [r[0] for r in rows] == ["sgd", "adam", "lion"] and rows[2][3:] == ["-", "400"]


def damage_none(root):
    shutil.rmtree(root)


def damage_one(root):
    space = protocol.search_space(protocol.resolve("lion"))
    os.unlink(summaries.path(root, "lion", WORKLOADS["nqm"], protocol.settings_dict(SETTINGS, space)))


def edit(root, change):
    for dirpath, _, files in os.walk(os.path.join(root, "nqm")):
        for f in files:
            if f.startswith("adam-"):
                with open(os.path.join(dirpath, f)) as fh:
                    s = json.load(fh)
                change(s)
                with open(os.path.join(dirpath, f), "w") as fh:
                    json.dump(s, fh)


def damage_identity(root):
    edit(root, lambda s: s["identity"].update(workload="000000000000"))


def damage_target(root):
    edit(root, lambda s: s.update(target=50.0))


@pytest.mark.parametrize("damage, reason", [
    (damage_none, "6 of 6 summaries are missing (the first: adam on digits_softmax)"),
    (damage_one, "1 of 6 summaries are missing (the first: lion on nqm)"),
    (damage_identity, "adam on nqm is stale: the workload changed"),
    (damage_target, "computed for target 50.0, the target is now 55.0"),
    (None, "workload nqm has no validation target"),
])
def test_missing_or_stale_summaries_are_one_line_and_a_figure_that_says_so(stored, tmp_path, capsys,
                                                                             monkeypatch, damage, reason):
    root = str(tmp_path / "baselines")
    shutil.copytree(stored, root)
    if damage is None:
        monkeypatch.setattr(baselines, "load_targets", lambda workloads: {"digits_softmax": 0.9})
    else:
        damage(root)
    record = bench.run(dataclasses.replace(CONFIG, directory=root), Context())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err and "python scripts/bench_baselines.py" in err, err
    assert err.startswith(f"13_bench.png not drawn: {root}: ")
    assert "table" not in record.meta and record.meta["summary"]["rows"] == [[err.strip()]]
    figure = bench.draw(record)["13_bench.png"]
    shown = " ".join(" ".join(t.get_text().split()) for t in figure.texts)
    assert reason in shown and "python scripts/bench_baselines.py" in shown


def test_lab_run_bench_draws_it_and_says_when_the_baselines_are_missing(stored, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(summaries, "BASELINES_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(baselines, "load_targets", lambda workloads: {w.name: 0.5 for w in workloads})
    assert main(["run", "bench", "--out", "figs", "--results", "res"]) == 0
    captured = capsys.readouterr()
    line = ("13_bench.png not drawn: the committed baselines (lab/bench/baselines): 60 of 60 summaries are "
            "missing (the first: sgd on digits_softmax); the baselines are computed by "
            "python scripts/bench_baselines.py")
    assert captured.err == line + "\n" and line in captured.out
    assert os.listdir("figs") == ["13_bench.png"] and os.path.getsize("figs/13_bench.png") > 20_000
    # the same command with the stored summaries: the table is printed and the figure drawn
    experiment = registry()["bench"]
    monkeypatch.setitem(registry(), "bench", dataclasses.replace(
        experiment, config=lambda: dataclasses.replace(CONFIG, directory=stored)))
    monkeypatch.setattr(baselines, "load_targets", given_targets)
    assert main(["run", "bench", "--out", "figs", "--results", "res"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    rows = [line.split() for line in captured.out.splitlines()]
    assert [r[0] for r in rows[3:6]] == ["sgd", "adam", "lion"] and rows[5][-2:] == ["-", "400"]
    assert os.path.getsize("figs/13_bench.png") > 50_000

