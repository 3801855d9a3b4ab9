"""The results store on hand-built results (no training): round trip, atomic writes, completeness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lab.problems import Problem
from lab.sweep import SweepConfig, store
from lab.sweep.store import IncompleteResultsError, SweepResult

PROBLEM = Problem(dataset="moons", hidden=(3,), n_train=20)


def fake_result(keep_params: bool = True) -> SweepResult:
    config = SweepConfig.make(PROBLEM, "sgd", {"learning_rate": [0.1, 0.2, 0.3], "l2": [0.0, 1e-3]},
                              seeds=2, steps=4, eval_every=2, batch_size=5, name="fake")
    runs, rng = config.runs, np.random.default_rng(0)
    params = [{"w": rng.normal(size=(runs, 2, 3)).astype(np.float32), "b": np.zeros((runs, 3), np.float32)},
              {"w": rng.normal(size=(runs, 3, 2)).astype(np.float32), "b": np.zeros((runs, 2), np.float32)}]
    test_accuracy = rng.uniform(size=(runs, 3)).astype(np.float32)
    test_accuracy[config.run_hparams()["learning_rate"] == np.float32(0.2), -1] = 1.0  # the best point
    return SweepResult(
        config=config, hparams=config.run_hparams(), seed=config.run_seeds(),
        logged_steps=config.logged_steps(), train_loss=rng.normal(size=(runs, 4)).astype(np.float32),
        eval_steps=config.eval_steps(), train_loss_eval=rng.normal(size=(runs, 3)).astype(np.float32),
        test_loss=rng.normal(size=(runs, 3)).astype(np.float32), test_accuracy=test_accuracy,
        diverged=np.zeros(runs, bool), diverged_step=np.full(runs, -1, np.int32),
        weight_norm=np.ones(runs, np.float32), near_zero_fraction=np.zeros(runs, np.float32),
        weight_hist=np.ones((runs, 5), np.int32),
        hist_edges=np.linspace(-1 - np.arange(runs), 1 + np.arange(runs), 6, axis=1, dtype=np.float32),
        final_params=params if keep_params else None, wall_seconds=1.5, compile_seconds=0.5,
        meta={"device": {"platform": "cpu"}},
    )


def test_round_trip_without_pickle(tmp_path):
    result = fake_result()
    store.save(str(tmp_path), result)
    assert sorted(os.listdir(tmp_path)) == ["results.json", "results.npz"]
    with np.load(tmp_path / "results.npz", allow_pickle=False) as z:
        assert "train_loss" in z.files and "hparam.learning_rate" in z.files
    back = store.load(str(tmp_path))
    assert isinstance(back.config, SweepConfig)
    assert back.config == result.config and back.path == str(tmp_path) and back.meta == result.meta
    for name in ("seed", "train_loss", "test_accuracy", "diverged_step", "weight_hist", "hist_edges"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
        assert getattr(back, name).dtype == getattr(result, name).dtype
    np.testing.assert_array_equal(back.hparams["l2"], result.hparams["l2"])
    np.testing.assert_array_equal(back.final_params[1]["w"], result.final_params[1]["w"])
    assert (back.wall_seconds, back.compile_seconds) == (1.5, 0.5)


def test_helpers_select_grid_view_best():
    result = fake_result(keep_params=False)
    assert result.select(learning_rate=0.2).sum() == 4
    assert result.select(learning_rate=0.2, l2=1e-3, seed=1).sum() == 1
    assert result.grid_view("test_accuracy").shape == (3, 2, 2, 3)
    assert result.best("test_accuracy")["learning_rate"] == 0.2
    with pytest.raises(ValueError, match="not swept"):
        result.select(momentum=0.9)


def test_a_directory_without_sidecar_or_with_a_changed_npz_is_not_complete(tmp_path):
    assert not store.is_complete(str(tmp_path))
    store.save(str(tmp_path), fake_result())
    assert store.is_complete(str(tmp_path))
    os.unlink(tmp_path / "results.json")
    with pytest.raises(IncompleteResultsError):
        store.load(str(tmp_path))
    store.save(str(tmp_path), fake_result())
    other = fake_result()
    other.train_loss = other.train_loss + 1
    store.save_npz(str(tmp_path / "results.npz"), {"train_loss": other.train_loss})  # npz without its sidecar
    assert not store.is_complete(str(tmp_path))
    with pytest.raises(IncompleteResultsError, match="inconsistent"):
        store.load(str(tmp_path))


@pytest.mark.parametrize("text", ["", '{"format_version": 2, "compl', "[]", "\udcff"])
def test_a_truncated_or_invalid_sidecar_is_not_complete(tmp_path, text):
    # What a write killed mid-way (without the atomic rename), a full disk or an editor may leave.
    store.save(str(tmp_path), fake_result())
    with open(tmp_path / "results.json", "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    assert not store.is_complete(str(tmp_path))
    with pytest.raises(IncompleteResultsError, match="incomplete"):
        store.load(str(tmp_path))


def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    store.save(str(tmp_path), fake_result())
    for name in ("results.npz.x1.tmp", "results.json.x2.tmp", "checkpoint.npz.x3.tmp", "checkpoint.npz",
                 "notes.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    store.remove_leftovers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "notes.tmp", "results.json", "results.npz"]
    store.remove_leftovers(str(tmp_path), checkpoint=True)
    assert sorted(os.listdir(tmp_path)) == ["notes.tmp", "results.json", "results.npz"]
    assert store.is_complete(str(tmp_path))


def test_results_of_another_format_are_not_complete(tmp_path):
    store.save(str(tmp_path), fake_result())
    with open(tmp_path / "results.json") as f:
        side = json.load(f)
    side["format_version"] = store.FORMAT_VERSION - 1  # written by an older engine
    store.save_json(str(tmp_path / "results.json"), side)
    assert not store.is_complete(str(tmp_path))
    with pytest.raises(IncompleteResultsError, match="format"):
        store.load(str(tmp_path))


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    path = str(tmp_path / "x.json")
    store.save_json(path, {"a": 1})

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.atomic_write(path, fail)
    assert os.listdir(tmp_path) == ["x.json"]
    with open(path) as f:
        assert json.load(f) == {"a": 1}
    with pytest.raises(TypeError, match="pickle"):
        store.save_npz(str(tmp_path / "o.npz"), {"o": np.asarray([{}], dtype=object)})


def test_atomic_write_all_writes_the_whole_set_or_nothing(tmp_path, monkeypatch):
    old = {"a.txt": b"old a", "b.txt": b"old b"}  # c.txt does not exist yet
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)

    def content(data):
        return lambda f: f.write(data)

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    def files():
        return {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    # A write fails: nothing is renamed, and no temporary file stays.
    writes = {str(tmp_path / "a.txt"): content(b"new a"), str(tmp_path / "c.txt"): content(b"new c"),
              str(tmp_path / "b.txt"): fail}
    with pytest.raises(RuntimeError, match="disk full"):
        store.atomic_write_all(writes)
    assert files() == old

    # A rename fails after others succeeded: the renamed files get their old content back (or go).
    replace, renamed = os.replace, []

    def replace_then_fail(src, dst):
        if os.path.basename(dst) == "b.txt":
            raise OSError("rename refused")
        renamed.append(os.path.basename(dst))
        replace(src, dst)

    writes = {str(tmp_path / n): content(f"new {n[0]}".encode()) for n in ("a.txt", "c.txt", "b.txt")}
    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace_then_fail)
        with pytest.raises(OSError, match="rename refused"):
            store.atomic_write_all(writes)
    assert renamed[:2] == ["a.txt", "c.txt"] and files() == old  # (then a.txt is renamed back)

    store.atomic_write_all(writes)
    assert files() == {"a.txt": b"new a", "b.txt": b"new b", "c.txt": b"new c"}


def test_final_params_of_any_model_load_back_as_nested_dicts_and_lists(tmp_path):
    # A CNN's {"conv": [layers], "head": {...}}, and a user's pytree of tuples and integer dict keys.
    result = fake_result()
    runs = result.runs
    cnn = {"conv": [{"w": np.ones((runs, 3, 1, 2), np.float32), "b": np.zeros((runs, 2), np.float32)}],
           "head": {"w": np.full((runs, 2, 2), 2, np.float32), "b": np.ones((runs, 2), np.float32)}}
    mine = ({"w": np.ones((runs, 2, 2), np.float32)}, {7: np.zeros((runs, 1), np.float32)})
    for params, want in [(cnn, cnn), (mine, [mine[0], mine[1]]), (np.ones((runs, 2), np.float32), None)]:
        result.final_params = params
        store.save(str(tmp_path), result)
        back = store.load(str(tmp_path)).final_params
        if want is None:
            np.testing.assert_array_equal(back, params)
            continue
        assert type(back) is type(want) and len(back) == len(want)
        assert jax.tree.structure(back) == jax.tree.structure(want)
        for got, ref in zip(jax.tree.leaves(back), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(got, ref)


USER_OPTIMIZER = """
    import optax

    def my_sgd(learning_rate):
        return optax.sgd(learning_rate)
"""


def test_results_of_a_users_optimizer_load_in_a_fresh_process_without_its_module(tmp_path):
    # Saved with the module on the path; loaded by a process that cannot import it.
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "lab_test_saved_opt.py").write_text(textwrap.dedent(USER_OPTIMIZER))
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        result = fake_result()
        result.config = SweepConfig.make(PROBLEM, "lab_test_saved_opt:my_sgd", dict(result.config.grid),
                                         seeds=2, steps=4, eval_every=2, batch_size=5, name="fake")
    finally:
        sys.path.remove(str(tmp_path / "code"))
        sys.modules.pop("lab_test_saved_opt", None)
    directory = str(tmp_path / "results")
    store.save(directory, result)
    with open(os.path.join(directory, "results.json")) as f:
        assert json.load(f)["sources"] == result.config.sources()
    code = ("import sys; from lab.sweep import store; r = store.load(sys.argv[1]); "
            "assert 'lab_test_saved_opt' not in sys.modules; print(r.config.optimizer, r.config.hash())")
    child = subprocess.run([sys.executable, "-c", code, directory], capture_output=True, text=True,
                           timeout=600, cwd=str(tmp_path))
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["lab_test_saved_opt:my_sgd", result.config.hash()]


def test_saved_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    path = tmp_path / "x.bin"
    old = os.umask(0o022)
    try:
        store.atomic_write(str(path), lambda f: f.write(b"abc"))
    finally:
        os.umask(old)
    assert path.read_bytes() == b"abc" and (path.stat().st_mode & 0o777) == 0o644
