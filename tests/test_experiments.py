"""The experiment registry, its configs and the record store (no training here)."""

import dataclasses
import os

import numpy as np
import pytest

from lab import experiments, plotting
from lab.experiments import EXPERIMENTS, Experiment, Record


def test_every_experiment_is_complete_and_drawable():
    figures = [f for e in EXPERIMENTS.values() for f in e.figures]
    assert len(EXPERIMENTS) == 12 and len(figures) == len(set(figures))
    assert set(plotting.DRAWERS) == set(EXPERIMENTS)
    for name, e in EXPERIMENTS.items():
        assert e.name == name and e.description and e.figures
        assert type(e.quick) is type(e.config) and e.config.__doc__


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_configs_are_frozen_and_the_quick_variant_is_smaller(name):
    e = EXPERIMENTS[name]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.config.steps = 1  # type: ignore[misc]
    hash(e.config)
    for field in ("steps", "seeds", "tune_seeds"):
        if hasattr(e.config, field):
            assert getattr(e.quick, field) <= getattr(e.config, field)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_has_a_thin_script(name):
    path = os.path.join(os.path.dirname(__file__), "..", "experiments", f"{name}.py")
    with open(path) as f:
        text = f.read()
    assert f'main(["run", "{name}", *sys.argv[1:]])' in text and f"python experiments/{name}.py" in text


def test_make_config_overrides_seeds_and_steps_and_rejects_what_is_not_there():
    e = EXPERIMENTS["optimizers"]
    config = e.make_config(quick=True, seeds=7, steps=11)
    assert (config.seeds, config.steps) == (7, 11)
    assert config.learning_rates == e.quick.learning_rates
    assert e.make_config() is e.config
    # lr_sensitivity draws the tuning sweeps, so --seeds sets their seeds.
    assert EXPERIMENTS["lr_sensitivity"].make_config(seeds=4).tune_seeds == 4
    with pytest.raises(ValueError, match="speed.*--seeds"):
        EXPERIMENTS["speed"].make_config(seeds=3)


def test_config_hash_tells_configs_apart():
    e = EXPERIMENTS["momentum"]
    assert experiments.config_hash("momentum", e.config) == experiments.config_hash("momentum", e.config)
    assert experiments.config_hash("momentum", e.config) != experiments.config_hash("momentum", e.quick)
    assert experiments.config_hash("momentum", e.config) != experiments.config_hash("losses", e.config)


def test_records_round_trip_and_incomplete_ones_are_not_loaded(tmp_path):
    record = Record({"a.b": np.arange(3, dtype=np.float32), "c": np.eye(2)}, {"summary": {"rows": [[1]]}})
    directory = str(tmp_path / "rec")
    experiments.save_record(directory, record)
    back = experiments.load_record(directory)
    assert back.meta == record.meta
    np.testing.assert_array_equal(back.arrays["a.b"], record.arrays["a.b"])
    # A changed npz (a write that did not finish, or a tampered file) is not loaded.
    with open(os.path.join(directory, experiments.RECORD_NPZ), "ab") as f:
        f.write(b"x")
    assert experiments.load_record(directory) is None
    os.unlink(os.path.join(directory, experiments.RECORD_JSON))
    assert experiments.load_record(directory) is None
    assert experiments.load_record(str(tmp_path / "nowhere")) is None


def test_run_experiment_reuses_its_record_unless_forced(tmp_path, monkeypatch):
    calls = []

    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int = 3

    def run(config, ctx):
        calls.append(ctx)
        return Record({"x": np.full(config.steps, len(calls), np.float32)}, {"summary": {}})

    fake = Experiment("fake", "a fake", Config(), Config(1), run, ("fake.png",))
    monkeypatch.setitem(EXPERIMENTS, "fake", fake)
    first = experiments.run_experiment("fake", Config(), results_dir=str(tmp_path))
    again = experiments.run_experiment("fake", Config(), results_dir=str(tmp_path))
    assert len(calls) == 1
    np.testing.assert_array_equal(again.arrays["x"], first.arrays["x"])
    assert again.meta["config"] == {"steps": 3}
    assert calls[0].store_dir == os.path.join(str(tmp_path), "sweeps")
    experiments.run_experiment("fake", Config(), results_dir=str(tmp_path), force=True)
    experiments.run_experiment("fake", Config(5), results_dir=str(tmp_path))
    assert len(calls) == 3 and calls[1].force


def test_unknown_experiment_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: optimizers, lr_sensitivity"):
        experiments.get_experiment("nope")
