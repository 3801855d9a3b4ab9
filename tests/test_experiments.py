"""The experiment registry, its configs, the record store, and the scripts of experiments/ (each in
its quick form)."""

import dataclasses
import importlib
import json
import os
import pathlib
import pkgutil
import runpy
import sys
import types

import numpy as np
import pytest

import lab.experiments
from lab.experiments import Experiment, Record, get_experiment, registry
from lab.experiments.record import RECORD_JSON, RECORD_NPZ, load_record, save_record
from lab.optim import catalogue
from lab.sweep import Problem, SweepConfig, SweepResult, store

EXPERIMENTS = registry()
SCRIPTS = sorted((pathlib.Path(__file__).parents[1] / "experiments").glob("*.py"))


def test_every_module_that_declares_figures_is_registered_under_its_name():
    modules = [importlib.import_module(f"lab.experiments.{m.name}")
               for m in pkgutil.iter_modules(lab.experiments.__path__)]
    declared = {m.__name__.rsplit(".", 1)[1] for m in modules if hasattr(m, "FIGURES")}
    assert declared and set(EXPERIMENTS) == declared
    figures = [f for e in EXPERIMENTS.values() for f in e.figures]
    assert len(figures) == len(set(figures))
    assert [e.figures[0] for e in EXPERIMENTS.values()] == sorted(e.figures[0] for e in EXPERIMENTS.values())
    for name, e in EXPERIMENTS.items():
        assert e.name == name and e.description and e.figures and e.config.__doc__
        assert type(e.make_config(quick=True)) is type(e.make_config())


def test_a_module_that_declares_figures_but_no_runner_is_refused():
    module = types.ModuleType("lab.experiments.half_done")
    module.FIGURES, module.DESCRIPTION, module.Config, module.quick = ("x.png",), "half", object, object
    with pytest.raises(TypeError, match="'half_done' declares FIGURES but not run, draw"):
        Experiment.from_module(module)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_configs_are_frozen_and_the_quick_variant_is_smaller(name):
    e = EXPERIMENTS[name]
    config, quick = e.make_config(), e.make_config(quick=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 1  # type: ignore[misc]
    hash(config)
    for field in ("steps", "seeds", "tune_seeds"):
        if hasattr(config, field):
            assert getattr(quick, field) <= getattr(config, field)


def test_make_config_overrides_seeds_and_steps_and_rejects_what_is_not_there():
    e = EXPERIMENTS["optimizers"]
    config = e.make_config(quick=True, seeds=7, steps=11)
    assert (config.seeds, config.steps) == (7, 11)
    assert config.learning_rates == e.make_config(quick=True).learning_rates
    assert e.make_config() == e.config()
    # lr_sensitivity draws the tuning sweeps, so --seeds sets their seeds.
    assert EXPERIMENTS["lr_sensitivity"].make_config(seeds=4).tune_seeds == 4
    with pytest.raises(ValueError, match="speed.*--seeds"):
        EXPERIMENTS["speed"].make_config(seeds=3)


def test_the_comparisons_default_to_the_catalogue():
    from lab.experiments import optimizers

    selection = EXPERIMENTS["optimizers"].make_config().optimizers
    assert selection[:len(catalogue.featured())] == catalogue.featured()
    assert set(selection) == set(catalogue.featured()) | set(optimizers.ZOO)
    assert EXPERIMENTS["lr_sensitivity"].make_config().optimizers == selection
    assert EXPERIMENTS["verification"].make_config().optimizers == catalogue.names()
    colors = [catalogue.color(o) for o in selection]
    assert len(set(colors)) == len(colors)  # each its own colour


def test_every_catalogue_optimizer_is_swept_or_left_out_with_its_reason():
    from lab.experiments import optimizers

    assert optimizers.rate_name("adam") == "learning_rate"
    assert optimizers.rate_name("polyak_sgd") == "max_learning_rate"  # its search space has no learning_rate
    cfg = dataclasses.replace(optimizers.quick(), optimizers=("polyak_sgd", "noisy_sgd"))
    ok, excluded = optimizers.sweepable(cfg)
    assert ok == ["polyak_sgd"]
    assert list(excluded) == ["noisy_sgd"] and "key" in excluded["noisy_sgd"]


def test_config_hash_tells_configs_apart():
    e = EXPERIMENTS["momentum"]
    full, quick = e.make_config(), e.make_config(quick=True)
    config_hash = lab.experiments.config_hash
    assert config_hash("momentum", full) == config_hash("momentum", e.config())
    assert config_hash("momentum", full) != config_hash("momentum", quick)
    assert config_hash("momentum", full) != config_hash("losses", full)
    assert config_hash("momentum", full) != config_hash("momentum", dataclasses.replace(full, betas=(0.5,)))


def _result(seed: int) -> SweepResult:
    """A small SweepResult built by hand (2 learning rates x 3 seeds, 2 evaluations): nothing trains."""
    config = SweepConfig.make(Problem("moons", hidden=(3,), n_train=8), "sgd", {"learning_rate": (0.1, 0.2)},
                              seeds=3, steps=2, eval_every=2)
    rng = np.random.default_rng(seed)
    runs, evals = config.runs, len(config.eval_steps())

    def values(*shape):
        return rng.random(shape).astype(np.float32)

    return SweepResult(
        config=config, hparams=config.run_hparams(), seed=config.run_seeds(),
        logged_steps=config.logged_steps(), train_loss=values(runs, len(config.logged_steps())),
        eval_steps=config.eval_steps(),
        train_loss_eval=values(runs, evals), test_loss=values(runs, evals), test_accuracy=values(runs, evals),
        diverged=np.zeros(runs, bool), diverged_step=np.full(runs, -1, np.int32), weight_norm=values(runs),
        near_zero_fraction=values(runs), weight_hist=np.ones((runs, 4), np.int64),
        hist_edges=np.tile(np.linspace(-1, 1, 5, dtype=np.float32), (runs, 1)),
        final_params=[{"w": values(runs, 2, 3), "b": values(runs, 3)},
                      {"w": values(runs, 3, 2), "b": values(runs, 2)}])


def _saved(tmp_path) -> tuple[str, Record]:
    record = Record({"adam.tune": _result(0), "relu.small normal": _result(1)},
                    {"a.b": np.arange(3, dtype=np.float32)}, {"summary": {"rows": [[1]]}})
    directory = str(tmp_path / "rec")
    save_record(directory, record)
    return directory, record


def test_records_round_trip_their_sweeps_and_arrays(tmp_path):
    directory, record = _saved(tmp_path)
    back = load_record(directory)
    assert back.meta == record.meta and list(back.sweeps) == list(record.sweeps)
    np.testing.assert_array_equal(back.arrays["a.b"], record.arrays["a.b"])
    for key, result in record.sweeps.items():
        loaded = back.sweeps[key]
        assert loaded.config == result.config and loaded.final_params is None  # params are not kept
        for name in ("test_accuracy", "train_loss_eval", "seed", "near_zero_fraction"):
            np.testing.assert_array_equal(loaded.grid_view(name), result.grid_view(name))
        np.testing.assert_array_equal(loaded.select(learning_rate=0.2), result.select(learning_rate=0.2))


@pytest.mark.parametrize("damage", ["record_npz", "sweep_npz", "sweep_sidecar_replaced", "no_record_json",
                                    "truncated_record_json", "sweep_dir_gone"])
def test_a_damaged_or_half_written_record_is_not_loaded(tmp_path, damage):
    directory, _ = _saved(tmp_path)
    sweeps = sorted(pathlib.Path(directory, "sweeps").iterdir())
    assert len(sweeps) == 2 and load_record(directory) is not None
    if damage == "record_npz":
        with open(os.path.join(directory, RECORD_NPZ), "ab") as f:
            f.write(b"x")
    elif damage == "sweep_npz":
        with open(sweeps[1] / store.RESULTS_NPZ, "ab") as f:
            f.write(b"x")
    elif damage == "sweep_sidecar_replaced":  # another sweep's complete results in its place
        store.save(str(sweeps[1]), _result(5))
    elif damage == "no_record_json":  # killed before the record was marked complete
        os.unlink(os.path.join(directory, RECORD_JSON))
    elif damage == "truncated_record_json":
        text = pathlib.Path(directory, RECORD_JSON).read_text()
        pathlib.Path(directory, RECORD_JSON).write_text(text[: len(text) // 2])
    else:
        for f in sweeps[0].iterdir():
            f.unlink()
        sweeps[0].rmdir()
    assert load_record(directory) is None


def test_saving_again_unmarks_the_old_record_first(tmp_path, monkeypatch):
    directory, record = _saved(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_npz", fail)
    with pytest.raises(OSError, match="disk full"):
        save_record(directory, record)
    assert load_record(directory) is None


def test_run_experiment_reuses_its_record_unless_forced(tmp_path, monkeypatch):
    calls = []

    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int = 3

    def run(config, ctx):
        calls.append(ctx)
        return Record({"s": _result(len(calls))}, {"x": np.full(config.steps, len(calls), np.float32)},
                      {"summary": {}})

    fake = Experiment("fake", "a fake", Config, lambda: Config(1), run, lambda record: {}, ("fake.png",))
    monkeypatch.setitem(registry(), "fake", fake)
    first = lab.experiments.run_experiment("fake", Config(), results_dir=str(tmp_path))
    again = lab.experiments.run_experiment("fake", Config(), results_dir=str(tmp_path))
    assert len(calls) == 1
    np.testing.assert_array_equal(again.arrays["x"], first.arrays["x"])
    np.testing.assert_array_equal(again.sweeps["s"].test_loss, first.sweeps["s"].test_loss)
    assert again.meta["config"] == {"steps": 3}
    assert calls[0].store_dir == os.path.join(str(tmp_path), "sweeps")
    lab.experiments.run_experiment("fake", Config(), results_dir=str(tmp_path), force=True)
    lab.experiments.run_experiment("fake", Config(5), results_dir=str(tmp_path))
    assert len(calls) == 3 and calls[1].force


def test_a_drawer_must_draw_exactly_the_figures_its_experiment_declares(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    fake = Experiment("fake", "a fake", object, object, None, lambda record: {"other.png": Figure()},
                      ("fake.png",))
    monkeypatch.setitem(registry(), "fake", fake)
    with pytest.raises(ValueError, match="drew.*other.png.*declares.*fake.png"):
        lab.experiments.draw_experiment("fake", Record(), str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_unknown_experiment_lists_the_valid_ones():
    with pytest.raises(ValueError, match=f"unknown experiment 'nope'; valid: {', '.join(EXPERIMENTS)}$"):
        get_experiment("nope")


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_a_script_runs_quick_prints_a_summary_and_writes_its_figure(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "--quick"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    figure = os.path.join("results", f"{script.stem}.png")
    assert out[-1] == f"figure: {figure}" and len(out) > 2, out
    with open(figure, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(figure) > 20_000
    assert os.listdir("results/sweeps")  # finished sweeps are saved for reuse
    assert json.loads(next(pathlib.Path("results/sweeps").rglob(store.RESULTS_JSON)).read_text())["complete"]
