"""Sweep files (``lab.sweep_file``) and ``lab sweep FILE.toml``: a file gives exactly the config the
Python API builds from the same values (same hash, so the same results directory); every bad key,
type or value is one line naming the file and the key; the example file runs in a tiny form.

Only the example's run compiles a program (moons, a 3-unit MLP, a few steps).
"""

from __future__ import annotations

import json
import os
import re
import tomllib

import numpy as np
import pytest

from lab import sweep_file
from lab.cli import main
from lab.sweep import Problem, SweepConfig, store

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "sweeps", "adam_lr.toml")
WARMUP_COSINE = os.path.join(os.path.dirname(EXAMPLE), "adam_warmup_cosine.toml")

BASE = """\
optimizer = "adam"
seeds = 2
steps = 10
batch_size = 8
[problem]
dataset = "moons"
hidden = [3]
n_train = 40
[grid]
learning_rate = [1e-3, 1e-2]
[fixed]
eps = 1e-8
"""


def _lab(argv: list[str]) -> int:
    """The ``lab`` command itself."""
    return main(argv)


def _toml(table: dict) -> str:
    """A TOML document for a dict of scalars, lists and tables (nested ones as dotted keys)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def keys(t, prefix=""):  # a table's keys, nested tables as dotted keys
        return "".join(keys(v, f"{prefix}{k}.") if isinstance(v, dict) else f"{prefix}{k} = {value(v)}\n"
                       for k, v in t.items())

    top = [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + keys(v) for k, v in table.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "".join(tables)


def test_a_file_gives_the_config_the_python_api_builds():
    text = """\
name = "two-axes"
optimizer = "adam"
seeds = 3
steps = 20
batch_size = "full"
eval_every = 5
log_every = 2
[problem]
dataset = "moons"
hidden = [4, 3]
activation = "tanh"
init = "xavier_normal"
loss = "mse_classification"
data_seed = 7
n_train = 40
noise = 0.3
validation = true
[grid]
l2 = [0.0, 1e-4]
learning_rate = [1e-3, 3e-3, 1e-2]
[fixed]
b1 = 0.8
eps = 1e-7
"""
    expected = SweepConfig.make(
        Problem(dataset="moons", hidden=(4, 3), activation="tanh", init="xavier_normal",
                loss="mse_classification", data_seed=7, n_train=40, noise=0.3, validation=True),
        "adam", {"l2": [0.0, 1e-4], "learning_rate": [1e-3, 3e-3, 1e-2]}, {"b1": 0.8, "eps": 1e-7},
        seeds=3, steps=20, batch_size=None, eval_every=5, log_every=2, name="two-axes")
    config = sweep_file.parse(text)
    assert config == expected and config.hash() == expected.hash()
    # The grid keeps the file's order: l2 is the slowest axis of the runs.
    np.testing.assert_array_equal(config.run_hparams()["l2"], np.float32([0] * 9 + [1e-4] * 9))


def test_the_name_is_the_file_name_unless_the_file_sets_one(tmp_path):
    (tmp_path / "my_sweep.toml").write_text(BASE)
    assert sweep_file.read(tmp_path / "my_sweep.toml").name == "my_sweep"
    (tmp_path / "named.toml").write_text('name = "other"\n' + BASE)
    assert sweep_file.read(tmp_path / "named.toml").name == "other"
    (tmp_path / "a b.toml").write_text(BASE)  # not a valid name: the default
    assert sweep_file.read(tmp_path / "a b.toml").name == SweepConfig.name


@pytest.mark.parametrize("old, new, message", [
    ('[1e-3, 1e-2]', '"fast"', '[grid] learning_rate: expected a list of numbers, got "fast"'),
    ('[1e-3, 1e-2]', '1e-3', '[grid] learning_rate: expected a list of numbers, got 0.001 (one value'),
    ('[1e-3, 1e-2]', '[1e-3, true]', '[grid] learning_rate: expected a list of numbers, got [0.001, true]'),
    ('[1e-3, 1e-2]', '[]', "[grid]: 'learning_rate' has no values"),
    ('[1e-3, 1e-2]', '[-1.0]', "[grid]: learning_rate=-1.0"),
    ('[1e-3, 1e-2]', '[nan]', "[grid]: 'learning_rate' values must be finite"),
    ('learning_rate', 'lr', "[grid]: 'lr' is not a hyperparameter of 'adam'"),
    ('eps = 1e-8', 'eps = [1e-8]', "[fixed] eps: expected a number, true or false, or a string, got [1e-08]"),
    ('eps = 1e-8', 'learning_rate = 0.1', "[fixed]: learning_rate also swept in grid"),
    ('eps = 1e-8', 'eps = -1.0', "[fixed]: eps=-1.0"),
    ('steps = 10', 'steps = 0', "steps: expected a positive integer, got 0"),
    ('steps = 10', 'steps = "ten"', 'steps: expected an integer, got "ten"'),
    ('steps = 10', 'steps = 10.0', "steps: expected an integer, got 10.0"),
    ('steps = 10', 'stepz = 10', "stepz: unknown key; valid: optimizer, seeds, steps"),
    ('batch_size = 8', 'batch_size = "all"', 'batch_size: expected a positive integer or "full", got "all"'),
    ('batch_size = 8', 'batch_size = 41', "batch_size: 41 is larger than the 40 training examples"),
    ('seeds = 2', 'name = "a b"', "name: expected letters, digits and '._-' only, got 'a b'"),
    ('"adam"', '"adma"', "optimizer: unknown optimizer 'adma'; valid: sgd,"),
    ('"adam"', '"no_such_module_here:f"', "optimizer: cannot import 'no_such_module_here'"),
    ('"adam"', '3', "optimizer: expected a string, got 3"),
    ('optimizer = "adam"', '', "optimizer: missing"),
    ('hidden = [3]', 'hidden = 3', "[problem] hidden: expected a list of integers, got 3"),
    ('hidden = [3]', 'hidden = [0]', "[problem] hidden: expected positive integer widths"),
    ('hidden = [3]', 'hiden = [3]', "[problem] hiden: unknown key; valid: dataset, hidden,"),
    ('n_train = 40', 'noise = true', "[problem] noise: expected a number, got true"),
    ('n_train = 40', 'validation = "yes"', '[problem] validation: expected true or false, got "yes"'),
    ('"moons"', '"moon"', "[problem] dataset: unknown data set 'moon'"),
    ('"moons"', '"digits"', "[problem] n_train / [problem] noise: only generated data sets"),
    ('seeds = 2', 'seeds = 2\n[steps]', 'steps: expected an integer, got a table {steps = 10'),
    ('[fixed]', '[fixd]', "fixd: unknown key"),
    ('[grid]\nlearning_rate = [1e-3, 1e-2]', '', "[grid]: missing"),
])
def test_a_bad_key_is_one_line_naming_the_file_and_the_key(old, new, message):
    assert old in BASE
    with pytest.raises(ValueError) as info:
        sweep_file.parse(BASE.replace(old, new, 1), "sweep.toml")
    text = str(info.value)
    assert "\n" not in text and text.startswith("sweep.toml: "), text
    assert message in text, text


def test_points_schedules_and_dotted_keys_give_the_config_the_python_api_builds():
    text = BASE.replace('seeds = 2', 'seeds = 2\nschedule = "warmup_cosine"').replace(
        "[grid]\nlearning_rate = [1e-3, 1e-2]\n", "") + """\
schedule.end_value = 0.1
clip.max_norm = 1.0
[[points]]
learning_rate = 1e-3
schedule.warmup_steps = 2
[[points]]
learning_rate = 1e-2
schedule = { warmup_steps = 0 }
"""
    expected = SweepConfig.make(
        Problem(dataset="moons", hidden=(3,), n_train=40), "adam",
        fixed={"eps": 1e-8, "schedule.end_value": 0.1, "clip.max_norm": 1.0}, schedule="warmup_cosine",
        points=[{"learning_rate": 1e-3, "schedule.warmup_steps": 2}, {"learning_rate": 1e-2,
                                                                       "schedule.warmup_steps": 0}],
        seeds=2, steps=10, batch_size=8)
    config = sweep_file.parse(text)
    assert config == expected and config.hash() == expected.hash()
    swept = BASE.replace("seeds = 2", 'seeds = 2\nschedule = "step_decay"') + """\
schedule.transition_steps = 4
[grid.schedule]
decay_rate = [0.5, 0.9]
"""
    assert sweep_file.parse(swept) == SweepConfig.make(
        Problem(dataset="moons", hidden=(3,), n_train=40), "adam",
        {"learning_rate": [1e-3, 1e-2], "schedule.decay_rate": [0.5, 0.9]},
        {"eps": 1e-8, "schedule.transition_steps": 4}, schedule="step_decay", seeds=2, steps=10, batch_size=8)


POINTS = BASE.replace("[grid]\nlearning_rate = [1e-3, 1e-2]\n", "")  # [problem] and [fixed], no [grid]


@pytest.mark.parametrize("text, message", [
    (BASE + "[[points]]\nlearning_rate = 1e-3\n",
     "[[points]]: give [grid] (every combination of its values) or [[points]] (each point as written), "
     "not both"),
    (POINTS + "[[points]]\nlearning_rate = 1e-3\n[[points]]\nlearning_rate = 1e-2\nb1 = 0.9\n",
     "[[points]] point 1 names b1, learning_rate; point 0 names learning_rate"),
    (POINTS + "[[points]]\nlearning_rate = 1e-3\n[[points]]\nlearning_rate = -1.0\n",
     "[[points]] point 1: learning_rate=-1.0: learning_rate must"),
    (POINTS + '[[points]]\nlearning_rate = "x"\n',
     '[[points]] point 0 learning_rate: expected a number, got "x"'),
    (POINTS + "[[points]]\nlearning_rate = 1e-3\nschedule.warmup_steps = 2\n",
     "[[points]]: 'schedule.warmup_steps' is a parameter of schedule 'warmup_cosine', not of 'constant'"),
    (BASE.replace("seeds = 2", 'seeds = 2\nschedule = "warmup_cosine"') + "schedule.warmup_steps = -1\n",
     "[fixed]: schedule.warmup_steps=-1: must be a whole number of steps >= 0"),
    (BASE.replace("seeds = 2", 'seeds = 2\nschedule = "cosine"'),
     "schedule: unknown schedule 'cosine'; valid: "),
    (POINTS, "[grid]: missing (the swept hyperparameters, each a list of values; or [[points]] tables"),
])
def test_bad_points_and_schedule_keys_are_one_line(text, message):
    with pytest.raises(ValueError) as info:
        sweep_file.parse(text, "s.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("s.toml: " + message), str(info.value)


def test_the_warmup_cosine_example_is_the_sweep_it_says_and_runs_tiny(tmp_path, capsys):
    config = sweep_file.read(WARMUP_COSINE)
    expected = SweepConfig.make(
        Problem(dataset="digits", hidden=(128,)), "adam",
        {"learning_rate": [1e-3, 3e-3, 1e-2], "schedule.warmup_steps": [0, 100]},
        {"schedule.decay_steps": 1000, "schedule.end_value": 0.01, "clip.max_norm": 1.0},
        schedule="warmup_cosine", seeds=2, steps=1000, batch_size=64, eval_every=50, log_every=10,
        name="adam-warmup-cosine")
    assert config == expected and config.hash() == expected.hash()
    with open(WARMUP_COSINE, "rb") as f:
        table = tomllib.load(f)
    table.update(steps=8, seeds=1, batch_size=8, eval_every=4, log_every=4,
                 problem={"dataset": "moons", "hidden": [3], "n_train": 40})
    table["grid"]["schedule"]["warmup_steps"] = [0, 3]
    table["fixed"]["schedule"]["decay_steps"] = 8
    path = tmp_path / "tiny.toml"
    path.write_text(_toml(table))
    assert _lab(["sweep", str(path), "--out", str(tmp_path / "results"), "--quiet"]) == 0
    result = store.load(store.result_dir(sweep_file.read(path), str(tmp_path / "results")))
    assert result.runs == 6 and np.isfinite(result.test_loss).all()
    assert "schedule.warmup_steps" in capsys.readouterr().out


def test_a_toml_syntax_error_gives_its_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BASE.replace("steps = 10", "steps = ten"))
    where = re.escape(str(path))
    with pytest.raises(ValueError, match=rf"^{where}: invalid TOML: .*\(at line 3, column 9\)$"):
        sweep_file.read(path)


def test_a_missing_unreadable_or_binary_file_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"nope.toml: no such file$"):
        sweep_file.read(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r": is a directory, not a TOML file$"):
        sweep_file.read(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b'optimizer = "\xff"\n')
    with pytest.raises(ValueError, match=r"bin.toml: not UTF-8 text \(byte 13\)$"):
        sweep_file.read(tmp_path / "bin.toml")


def test_the_example_file_is_the_sweep_it_says():
    config = sweep_file.read(EXAMPLE)
    expected = SweepConfig.make(
        Problem(dataset="digits", hidden=(128,), activation="relu", init="he_normal", loss="cross_entropy"),
        "adam", {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]},
        {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
        seeds=3, steps=1000, batch_size=64, eval_every=50, log_every=10, name="adam-lr")
    assert config == expected and config.hash() == expected.hash()


@pytest.fixture(scope="module")
def tiny_example(tmp_path_factory) -> tuple[str, str]:
    """The example file with a tiny problem and few steps, run by ``lab sweep``: (file, --out)."""
    with open(EXAMPLE, "rb") as f:
        table = tomllib.load(f)
    table.update(steps=6, seeds=2, batch_size=8, eval_every=3, log_every=3,
                 problem={"dataset": "moons", "hidden": [3], "n_train": 40})
    root = tmp_path_factory.mktemp("tiny")
    path, out = str(root / "tiny.toml"), str(root / "results")
    with open(path, "w") as f:
        f.write(_toml(table))
    return path, out


def test_lab_sweep_runs_the_example_saves_it_and_reuses_it(tiny_example, capsys):
    path, out = tiny_example
    assert _lab(["sweep", path, "--out", out, "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    config = sweep_file.read(path)
    directory = store.result_dir(config, out)
    result = store.load(directory)
    assert result.config == config and config.runs == 14 and not result.diverged.any()
    assert lines[0].startswith("adam-lr: adam on moons, 7 grid points x 2 seeds, 6 steps (")
    assert lines[1].split() == ["learning_rate", "final", "train_loss", "final", "test_loss", "final",
                                "test_accuracy", "diverged"]
    rows = [line.split() for line in lines[3:10]]
    final = result.grid_view("test_loss")[..., -1].mean(axis=-1)
    for row, lr, loss in zip(rows, [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], final, strict=True):
        assert float(row[0]) == lr and float(row[2]) == pytest.approx(loss, rel=1e-3) and row[4] == "0/2"
    assert lines[-1].startswith(f"saved in {directory}; as CSV: lab export {directory} --csv")

    assert _lab(["sweep", path, "--out", out, "--quiet"]) == 0
    assert "(saved results reused)" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("old, new, message", [
    ("steps = 6", "steps = -6", "tiny.toml: steps: expected a positive integer, got -6"),
    ("batch_size = 8", "batch_size = 400", "tiny.toml: batch_size: 400 is larger than the 40 training"),
    ('optimizer = "adam"', 'optimizer = "my_missing_module:lion"', "tiny.toml: optimizer: cannot import"),
])
def test_lab_sweep_with_a_bad_file_is_one_line_and_writes_nothing(tiny_example, tmp_path, capsys,
                                                                   old, new, message):
    with open(tiny_example[0]) as f:
        text = f.read()
    assert old in text
    (tmp_path / "tiny.toml").write_text(text.replace(old, new))
    out = tmp_path / "results"
    assert _lab(["sweep", str(tmp_path / "tiny.toml"), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert not out.exists()


def test_lab_sweep_refuses_an_out_that_is_a_file(tiny_example, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert _lab(["sweep", tiny_example[0], "--out", str(tmp_path / "file"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "is not a directory" in err, err


def test_lab_sweep_prints_one_row_per_listed_point(tmp_path, capsys):
    points = [(1e-3, 0.9), (1e-2, 0.8), (3e-2, 0.95)]
    text = POINTS.replace("steps = 10", "steps = 4\neval_every = 2") + "".join(
        f"[[points]]\nlearning_rate = {lr}\nb1 = {b1}\n" for lr, b1 in points)
    path = tmp_path / "points.toml"
    path.write_text(text)
    assert _lab(["sweep", str(path), "--out", str(tmp_path / "results"), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "3 points x 2 seeds, 4 steps" in lines[0]
    assert lines[1].split()[:2] == ["learning_rate", "b1"]
    result = store.load(store.result_dir(sweep_file.read(path), str(tmp_path / "results")))
    final = result.grid_view("test_loss")[..., -1].mean(axis=-1)  # (points,)
    rows = [line.split() for line in lines[3:6]]
    for row, (lr, b1), loss in zip(rows, points, final, strict=True):
        assert (float(row[0]), float(row[1])) == (lr, b1) and float(row[3]) == pytest.approx(loss, rel=1e-3)
