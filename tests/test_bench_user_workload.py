"""``lab bench --workload``: your own problem (an npz file or a factory) benchmarked end to end, its
target computed by the reference procedure, stored under --out and reused, and every bad input as
one line with exit status 2 and nothing written.

Every run trains the same problem (the MLP on one npz file, 8 steps) with Adam at budget 4 and 2 seeds,
the quick targets' reference settings: one set of compiled programs serves all of them."""

import json
import os
import sys
import textwrap

import jax
import numpy as np
import pytest

from lab import cli, cli_bench
from lab.bench import baselines, targets, user
from lab.bench.protocol import Settings
from lab.bench.workloads import Workload
from lab.data import digits
from lab.problems import Problem
from lab.sweep import store

RUN = ["--optimizers", "adam", "--budget", "4", "--seeds", "2", "--no-figures"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """tiny.npz (a slice of the digits), reg.npz (float targets), bad.npz (text) and a module of
    factories, importable while this file's tests run."""
    root = tmp_path_factory.mktemp("user_workload")
    d = digits(jax.random.key(0))
    arrays = {"x_train": np.asarray(d.x_train)[:300], "y_train": np.asarray(d.y_train)[:300],
              "x_test": np.asarray(d.x_test)[:100], "y_test": np.asarray(d.y_test)[:100]}
    np.savez(root / "tiny.npz", **arrays)
    np.savez(root / "my-data.v2.npz", **arrays)
    rng = np.random.default_rng(0)
    np.savez(root / "reg.npz", x_train=rng.normal(size=(40, 3)), y_train=rng.normal(size=40),
             x_test=rng.normal(size=(10, 3)), y_test=rng.normal(size=10))
    (root / "bad.npz").write_text("not an archive")
    (root / "mods").mkdir()
    (root / "mods" / "my_workloads.py").write_text(textwrap.dedent(f"""
        from lab.bench.workloads import Workload
        from lab.problems import Problem

        DATA = {f"npz:{root / 'tiny.npz'}"!r}
        nothing_callable = 3

        def mine():
            return Workload("mine", Problem(DATA, validation=True), steps=8, batch_size=64, eval_every=1,
                            metric="accuracy", target=0.5)

        def problem():
            return Problem(DATA)

        def clash():
            return Workload("digits_mlp", Problem(DATA, validation=True), steps=8, batch_size=64,
                            eval_every=1, metric="accuracy")

        def number():
            return 3

        def broken():
            raise RuntimeError("no data today")
    """))
    sys.path.insert(0, str(root / "mods"))
    yield root
    sys.path.remove(str(root / "mods"))
    sys.modules.pop("my_workloads", None)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_npz_workload_end_to_end(files, tmp_path, capsys):
    out = tmp_path / "bench"
    spec = f"npz:{files / 'tiny.npz'}"
    args = ["bench", "--workload", spec, "--target", "0.5", "--quick", *RUN, "--out", str(out)]
    assert cli.main([*args, "--json"]) == 0
    result = _json(capsys)
    cells = result["optimizers"]["adam"]["workloads"]
    assert list(cells) == ["tiny_quick"]  # only the user's workload: no suite workload without --workloads
    cell = cells["tiny_quick"]
    assert cell["target"] == 0.5 and cell["metric"] == "accuracy"
    assert len(cell["steps_to_target_per_seed"]) == 2 and 0 <= cell["final_test"] <= 1
    with open(next((out / "summaries" / "tiny_quick").glob("adam-*.json"))) as f:
        summary = json.load(f)
    assert summary["identity"]["workload"] == user.workload(spec).quick().identity()
    assert not (out / "targets.json").exists()  # a given target is not stored
    assert cli.main([*args, "--quiet"]) == 0  # the table, from the stored summary
    table = capsys.readouterr().out.splitlines()
    assert "tiny_quick" in table[0] and table[2].split()[0] == "adam"
    assert "1 stored summaries reused" in table[-2] and "your workloads (tiny_quick)" in table[-1]


def test_factory_workload_keeps_its_own_target_and_settings(files, tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["bench", "--workload", "my_workloads:mine", *RUN, "--out", str(out), "--json"]) == 0
    cell = _json(capsys)["optimizers"]["adam"]["workloads"]["mine"]
    assert cell["target"] == 0.5 and cell["metric"] == "accuracy"
    import my_workloads

    with open(next((out / "summaries" / "mine").glob("adam-*.json"))) as f:
        assert json.load(f)["identity"]["workload"] == my_workloads.mine().identity()


def _best_validation_target(sweeps: list[str], slack: float) -> float:
    """The target by AlgoPerf's rule with a slack, in NumPy from the reference sweeps' saved curves:
    per reference, the median over the rerun seeds of each seed's best validation accuracy; the best
    reference; moved back toward the median accuracy at step 0 by ``slack``."""
    medians, initial = [], []
    for path in sweeps:
        result = store.load(path)
        acc = np.asarray(result.test_accuracy, np.float64)  # validation accuracy: the problem holds it out
        assert not np.asarray(result.diverged).any()
        medians.append(np.median(acc.max(axis=1)))
        initial.extend(acc[:, 0])
    best = max(medians)
    return best + slack * (np.median(initial) - best)


def test_target_computed_stored_and_reused(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    args = ["bench", "--workload", f"npz:{files / 'tiny.npz'}", "--quick", *RUN, "--out", str(out), "--json"]
    calls, real = [], baselines.compute_targets

    def spy(workloads, **kwargs):
        found = real(workloads, **kwargs)
        calls.append(kwargs | {"sweeps": sorted(os.listdir(out / "sweeps"))})
        return found

    monkeypatch.setattr(baselines, "compute_targets", spy)
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    target = json.loads(captured.out)["optimizers"]["adam"]["workloads"]["tiny_quick"]["target"]
    (call,) = calls
    assert (call["references"], call["settings"], call["within"], call["slack"]) == \
        (("momentum", "adam"), Settings(budget=4, seeds=2, search_seed=1), 1.0, 0.25)
    selected = [str(out / "sweeps" / s) for s in call["sweeps"] if s.startswith("tiny_quick-selected")]
    assert len(selected) == 2  # one rerun of each reference's chosen trial
    assert target == pytest.approx(_best_validation_target(selected, 0.25), abs=1e-6)
    assert f"target of tiny_quick: accuracy {target:g}" in captured.err
    assert f"saved in {out / 'targets.json'}" in captured.err
    with open(out / "targets.json") as f:
        entry = json.load(f)["targets"]["tiny_quick"]
    assert entry["target"] == target and entry["within_steps"] == 8 and entry["slack"] == 0.25
    assert entry["workload_identity"] == user.workload(f"npz:{files / 'tiny.npz'}").quick().identity()

    def fail(*args, **kwargs):
        raise AssertionError("the stored target should have been reused")

    monkeypatch.setattr(baselines, "compute_targets", fail)
    before = (out / "targets.json").read_bytes()
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["optimizers"]["adam"]["workloads"]["tiny_quick"]["target"] == target
    assert "target of" not in captured.err and (out / "targets.json").read_bytes() == before


def test_full_workload_target_procedure(files, tmp_path, capsys, monkeypatch):
    """Without --quick the target comes from the references at TARGET_SETTINGS, within the first
    third of the steps (the computation itself is the one tested above; here it is planted)."""
    out = tmp_path / "bench"
    calls = []

    def planted(workloads, **kwargs):
        calls.append(kwargs)
        (w,) = workloads
        return {w.name: targets.target_entry(w, 0.25, ["momentum", "adam"], 16, 5, 0.0, "today",
                                             within_steps=baselines.within_steps(w, kwargs["within"]))}

    monkeypatch.setattr(baselines, "compute_targets", planted)
    assert cli.main(["bench", "--workload", f"npz:{files / 'tiny.npz'}", "--steps", "8", *RUN,
                     "--out", str(out), "--json"]) == 0
    assert _json(capsys)["optimizers"]["adam"]["workloads"]["tiny"]["target"] == 0.25
    (call,) = calls
    assert (call["references"], call["settings"], call["within"], call["slack"]) == \
        (user.REFERENCES, user.TARGET_SETTINGS, baselines.TARGET_WITHIN, 0.0)
    assert user.TARGET_SETTINGS == Settings(budget=Settings.budget, seeds=Settings.seeds, search_seed=1)
    with open(out / "targets.json") as f:
        assert json.load(f)["targets"]["tiny"]["within_steps"] == 3  # a third of 8 steps, each evaluated


def test_user_workload_definitions(files):
    tiny = f"npz:{files / 'tiny.npz'}"
    w = user.workload(tiny)
    assert (w.name, w.steps, w.batch_size, w.eval_every, w.metric, w.target) == ("tiny", 400, 64, 4,
                                                                                 "accuracy", None)
    assert w.problem == Problem(tiny, validation=True) and w.problem.hidden == (128,)
    assert user.workload(tiny, steps=50).eval_every == 1 and user.workload(tiny, steps=1000).eval_every == 10
    reg = user.workload(f"npz:{files / 'reg.npz'}")
    assert reg.problem.loss == "mse" and reg.metric == "loss"
    assert user.workload(f"npz:{files / 'my-data.v2.npz'}").name == "my_data_v2"
    p = user.workload("my_workloads:problem", batch_size=16)
    assert (p.name, p.problem.validation, p.steps, p.batch_size, p.eval_every) == \
        ("problem", True, 400, 16, 4)
    m = user.workload("my_workloads:mine", steps=200, metric="loss")
    assert (m.name, m.steps, m.eval_every, m.metric, m.target) == ("mine", 200, 2, "loss", 0.5)
    assert isinstance(m, Workload)
    assert (cli_bench.DEFAULT_STEPS, cli_bench.DEFAULT_BATCH_SIZE) == \
        (user.DEFAULT_STEPS, user.DEFAULT_BATCH_SIZE)  # the help text's


@pytest.mark.parametrize("args, message", [
    (["--workload", "no_such_module_x:make"], "--workload: cannot import 'no_such_module_x'"),
    (["--workload", "my_workloads:nothing"], "--workload: 'my_workloads' has no attribute 'nothing'"),
    (["--workload", "my_workloads:nothing_callable"], "--workload: 'my_workloads:nothing_callable' is a int"),
    (["--workload", "my_workloads:number"], "--workload: my_workloads:number() returned int, not a "
                                            "lab.bench.workloads.Workload or a lab.problems.Problem"),
    (["--workload", "my_workloads:broken"], "my_workloads:broken() raised RuntimeError: no data today"),
    (["--workload", "my_workloads:clash"], "named 'digits_mlp', a name of the suite's workloads"),
    (["--workload", "tiny.npz"], "--workload: expected 'npz:PATH' or 'module:factory', got 'tiny.npz'"),
    (["--workload", "npz:{root}/missing.npz"], "missing.npz': not a file"),
    (["--workload", "npz:{root}/bad.npz"], "bad.npz': not a NumPy .npz file"),
    (["--workload", "npz:{root}/tiny.npz", "--steps", "0"], "--steps: expected a positive integer, got 0"),
    (["--workload", "npz:{root}/tiny.npz", "--batch-size", "-2"], "--batch-size: expected a positive"),
    (["--workload", "npz:{root}/tiny.npz", "--target", "nan"], "finite number, got 'nan'"),
    (["--workload", "npz:{root}/tiny.npz", "--target", "high"], "--target: expected a finite number"),
    (["--workload", "npz:{root}/reg.npz", "--metric", "accuracy"], "--metric: npz:"),
    (["--workload", "npz:{root}/tiny.npz", "--workload", "npz:{root}/reg.npz", "--target", "0.5"],
     "--target: one target for 2 workloads is ambiguous"),
    (["--workload", "npz:{root}/tiny.npz", "--workload", "npz:{root}/tiny.npz"], "two workloads named 'tiny"),
    (["--steps", "10"], "--steps: applies to your own workload only"),
    (["--target", "0.5", "--workloads", "digits_softmax"], "--target: applies to your own workload only"),
])
def test_bad_input_is_one_line(files, tmp_path, capsys, args, message):
    out = tmp_path / "bench"
    args = [a.replace("{root}", str(files)) for a in args]
    assert cli.main(["bench", "--optimizers", "sgd", "--quick", "--out", str(out), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("lab: error: ") and message in captured.err, captured.err
    assert not out.exists()


def test_stale_stored_target_is_refused(files, tmp_path, capsys):
    out = tmp_path / "bench"
    spec = f"npz:{files / 'tiny.npz'}"
    w = user.workload(spec).quick()
    entry = targets.target_entry(w, 0.5, ["adam"], 4, 2, 0.25, "today")
    user.save_targets(str(out), {w.name: entry | {"workload_identity": "0123456789ab"}})
    before = (out / "targets.json").read_bytes()
    assert cli.main(["bench", "--workload", spec, "--quick", *RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "tiny_quick: the target was computed for workload identity " \
        "0123456789ab" in err and "--recompute" in err
    assert sorted(os.listdir(out)) == ["targets.json"] and (out / "targets.json").read_bytes() == before
    assert user.stored_target(str(out), w, recompute=True) is None


def test_a_stored_target_set_another_way_is_stale(files, tmp_path, capsys):
    """Same workload, but the target was set by other references (or budget, window, slack, protocol)
    than the procedure's now: refused like a changed workload, reused once it matches."""
    out = tmp_path / "bench"
    spec = f"npz:{files / 'tiny.npz'}"
    w = user.workload(spec).quick()
    how = baselines.QUICK_TARGET_SETTINGS
    now = targets.target_entry(w, 0.5, list(baselines.QUICK_REFERENCES), how.budget, how.seeds,
                               baselines.QUICK_SLACK, "today",
                               within_steps=baselines.within_steps(w, baselines.QUICK_WITHIN))
    user.save_targets(str(out), {w.name: now})
    assert user.stored_target(str(out), w, quick=True) == 0.5
    for changed in ({"optimizers": ["adam"]}, {"trials": 50}, {"within_steps": 2}, {"protocol": 1}):
        user.save_targets(str(out), {w.name: now | changed})
        field = next(iter(changed))
        with pytest.raises(ValueError, match=f"tiny_quick: the target was computed another way \\({field}"):
            user.stored_target(str(out), w, quick=True)
        assert user.stored_target(str(out), w, recompute=True, quick=True) is None
