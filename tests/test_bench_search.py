"""lab.bench.search: JSON search spaces and their errors, the names a factory takes, the default
space, and quasi-random trials (bounds, log-uniform marginals, low discrepancy, determinism)."""

import json
import math
import types

import numpy as np
import optax
import pytest
from scipy.stats import qmc

from lab.bench import search
from lab.optim import catalogue
from lab.optim.catalogue import Hyperparameter

EXAMPLE = ('{"learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"},'
           ' "b1": {"low": 0.8, "high": 0.99, "scale": "linear"},'
           ' "schedule": ["constant", "warmup_cosine"]}')
EXPECTED = (Hyperparameter("learning_rate", 1e-4, 1e-1, "log"), Hyperparameter("b1", 0.8, 0.99, "linear"),
            search.Choice("schedule", ("constant", "warmup_cosine")))


def test_parse_json_text_dict_and_algoperf_spelling():
    assert search.parse(EXAMPLE) == EXPECTED
    assert search.parse(json.loads(EXAMPLE)) == EXPECTED
    algoperf = {"learning_rate": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
                "b1": {"min": 0.8, "max": 0.99, "scaling": "linear"},
                "schedule": {"feasible_points": ["constant", "warmup_cosine"]}}
    assert search.parse(algoperf) == EXPECTED
    assert search.parse(search.as_dict(EXPECTED)) == EXPECTED


def test_load_file(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(EXAMPLE)
    assert search.load(path) == EXPECTED
    assert search.load(str(path)) == EXPECTED


@pytest.mark.parametrize("contents, match", [
    (None, "cannot read it"),                        # no such file
    ("{'learning_rate': 1}", "not valid JSON"),      # not JSON
    (b"\xff\xfe{", "cannot read it"),                # not text
    ('["learning_rate"]', "expected a non-empty JSON object"),
])
def test_load_errors_name_the_file(tmp_path, contents, match):
    path = tmp_path / "space.json"
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    elif contents is not None:
        path.write_text(contents)
    with pytest.raises(ValueError, match=match) as err:
        search.load(path)
    assert "space.json" in str(err.value) and "\n" not in str(err.value)


def test_load_a_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read it"):
        search.load(tmp_path)


@pytest.mark.parametrize("spec, match", [
    ({"lr": {"low": 1e-4, "high": 1.0, "scale": "logarithmic"}}, r"'lr'.*unknown scale 'logarithmic'"),
    ({"lr": {"low": 1e-4, "high": 1.0, "distribution": "log"}}, r"'lr'.*unknown key 'distribution'"),
    ({"lr": {"low": 1e-4, "high": 1.0}}, r"'lr'.*low, high and scale"),
    ({"lr": {"low": 1e-4, "min": 1e-3, "high": 1.0, "scale": "log"}}, r"'lr'.*exactly the keys"),
    ({"lr": {"low": 1.0, "high": 1e-4, "scale": "log"}}, r"'lr'.*low < high"),
    ({"b1": {"low": 0.9, "high": 0.9, "scale": "linear"}}, r"'b1'.*low < high"),
    ({"lr": {"low": 0.0, "high": 1.0, "scale": "log"}}, r"'lr'.*log scale needs low > 0"),
    ({"lr": {"low": -1.0, "high": 1.0, "scale": "log"}}, r"'lr'.*log scale needs low > 0"),
    ({"lr": {"low": "1e-4", "high": 1.0, "scale": "log"}}, r"'lr'.*low must be a number"),
    ({"lr": {"low": True, "high": 1.0, "scale": "linear"}}, r"'lr'.*low must be a number"),
    ({"lr": 0.1}, r"'lr'.*or a list of choices"),
    ({"schedule": []}, r"'schedule'.*non-empty list"),
    ({"schedule": [["a"]]}, r"'schedule'.*non-empty list"),
    ({"schedule": ["a", "a"]}, r"'schedule'.*repeated"),
    ({"1lr": {"low": 1e-4, "high": 1.0, "scale": "log"}}, r"'1lr' is not a hyperparameter name"),
    ({}, "non-empty JSON object"),
    ("[1, 2]", "non-empty JSON object"),
    ('{"lr": ', "not valid JSON"),
    ('{"lr": [0.1], "lr": [0.2]}', "'lr' appears twice"),
    ('{"lr": {"low": NaN, "high": 1.0, "scale": "linear"}}', r"'lr'.*finite"),
])
def test_parse_errors_are_one_line_naming_the_key(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        search.parse(spec)
    assert "\n" not in str(err.value)


def test_check_names_against_the_factory_signature():
    ok = search.parse({"learning_rate": {"low": 1e-4, "high": 1.0, "scale": "log"},
                       "b1": [0.9, 0.95], "l1": [0.0, 1e-4], "l2": [0.0], "schedule": ["constant"],
                       "schedule.warmup_steps": [0, 100], "clip.max_norm": [1.0]})
    search.check_names(ok, optax.adam)
    bad = search.parse({"learning_rate": [0.1], "momentum": [0.9]})
    with pytest.raises(ValueError, match=r"'momentum' is not an argument of adam; valid: learning_rate, b1"):
        search.check_names(bad, optax.adam)
    with pytest.raises(ValueError, match="'clip' is not an argument"):  # only clip.<setting> is reserved
        search.check_names(search.parse({"clip": [1.0]}), optax.adam)

    def takes_anything(learning_rate, **kwargs):
        return optax.sgd(learning_rate)

    search.check_names(bad, takes_anything)
    with pytest.raises(ValueError, match="cannot read the arguments"):
        search.check_names(bad, max)


def test_reserved_names_include_the_sweep_penalties():
    from lab.sweep.config import PENALTIES

    assert set(PENALTIES) <= set(search.RESERVED)


def test_search_space_of_catalogue_entries_and_user_spaces():
    assert search.search_space("adam") == catalogue.get("adam").search_space
    assert search.search_space(catalogue.get("adam").factory) == catalogue.get("adam").search_space
    assert search.search_space("adam", EXAMPLE) == EXPECTED  # a user's space replaces the entry's
    assert search.search_space(optax.adam, EXPECTED) == EXPECTED
    with pytest.raises(ValueError, match="'nope' is not an argument of sgd"):
        search.search_space("sgd", {"nope": [1]})
    with pytest.raises(ValueError, match="unknown optimizer 'no_such'"):
        search.search_space("no_such")


def test_default_space_is_the_catalogues_most_common_learning_rate_range():
    def mine(learning_rate, decay=0.9):
        return optax.sgd(learning_rate)

    (lr,) = search.search_space(mine)
    assert (lr.name, lr.scale) == ("learning_rate", "log")
    ranges = [(h.low, h.high) for e in catalogue.entries() for h in e.search_space
              if h.name == "learning_rate"]
    assert ranges.count((lr.low, lr.high)) == max(ranges.count(r) for r in ranges)
    assert (lr.low, lr.high) == (1e-4, 10.0)  # catalogue.LEARNING_RATE, shared by most entries


def test_default_learning_rate_breaks_ties_by_the_widest_range(monkeypatch):
    def entry(low, high):
        return types.SimpleNamespace(search_space=(Hyperparameter("learning_rate", low, high),
                                                   Hyperparameter("eps", 1e-9, 1e-3)))

    fake = [entry(1e-3, 1.0), entry(1e-5, 1.0), entry(1e-3, 1.0), entry(1e-5, 1.0), entry(1e-2, 1e3)]
    monkeypatch.setattr(catalogue, "entries", lambda: tuple(fake))
    assert search.default_learning_rate() == Hyperparameter("learning_rate", 1e-5, 1.0, "log")


def test_factory_without_learning_rate_needs_a_search_space():
    def polyak(max_learning_rate=1.0, scaling=1.0):
        return optax.sgd(max_learning_rate)

    with pytest.raises(ValueError, match="polyak has no learning_rate argument, so it needs a search space"):
        search.search_space(polyak)
    space = search.search_space(polyak, {"max_learning_rate": {"low": 1e-3, "high": 1.0, "scale": "log"}})
    assert [d.name for d in space] == ["max_learning_rate"]


SPACE = (Hyperparameter("learning_rate", 1e-4, 1e-1, "log"), Hyperparameter("b1", 0.8, 0.99, "linear"),
         Hyperparameter("eps", 1e-10, 1e-4, "log"),
         search.Choice("schedule", ("constant", "cosine", "linear")))


def _unit(trials, space):
    """Map trials back to [0, 1)^d: each numeric dimension through its scale's inverse."""
    cols = []
    for d in space:
        x = np.array([t[d.name] for t in trials])
        cols.append(np.log(x / d.low) / math.log(d.high / d.low) if d.scale == "log" else
                    (x - d.low) / (d.high - d.low))
    return np.stack(cols, axis=-1)


def test_sample_within_bounds_with_the_right_types_and_choices():
    trials = search.sample(SPACE, 256, seed=0)
    assert len(trials) == 256 and all(list(t) == [d.name for d in SPACE] for t in trials)
    for d in SPACE[:3]:
        x = np.array([t[d.name] for t in trials])
        assert all(type(t[d.name]) is float for t in trials)
        assert np.all((x >= d.low) & (x <= d.high)), d.name
    counts = [sum(t["schedule"] == v for t in trials) for v in SPACE[3].values]
    assert max(counts) - min(counts) <= 1 and sum(counts) == 256  # each choice equally often


def test_sample_log_dimensions_are_log_uniform():
    trials = search.sample(SPACE, 256, seed=1)
    for d in SPACE[:3]:
        x = np.array([t[d.name] for t in trials])
        middle = math.sqrt(d.low * d.high) if d.scale == "log" else (d.low + d.high) / 2
        assert abs(np.mean(x < middle) - 0.5) < 0.02, d.name
        # and evenly spread on its scale: 8 equal bins (in log space for log) hold 32 +- 2 each
        u = _unit(trials, (d,))[:, 0]
        assert np.all(np.abs(np.histogram(u, bins=8, range=(0, 1))[0] - 32) <= 2), d.name


def test_sample_has_low_discrepancy():
    """Independent uniform draws of 64 points in 3-d have a centred L2 discrepancy of about 0.012 (never
    below 0.003 in 200 draws); scrambled Halton points stay near 0.001. The base-2 coordinate of the
    first 64 points puts exactly 4 in each sixteenth."""
    space = SPACE[:3]
    iid = np.random.default_rng(0)
    iid_discrepancy = np.mean([qmc.discrepancy(iid.random((64, 3))) for _ in range(20)])
    for seed in range(5):
        u = _unit(search.sample(space, 64, seed), space)
        assert qmc.discrepancy(np.clip(u, 0, 1)) < min(0.003, iid_discrepancy / 4)
        np.testing.assert_array_equal(np.histogram(u[:, 0], bins=16, range=(0, 1))[0], np.full(16, 4))


def test_sample_is_deterministic_given_the_seed():
    assert search.sample(SPACE, 16, 3) == search.sample(SPACE, 16, 3)
    assert search.sample(SPACE, 16, 3) != search.sample(SPACE, 16, 4)
    assert search.sample(SPACE, 16, 3)[:5] == search.sample(SPACE, 5, 3)  # a longer run extends a shorter


@pytest.mark.parametrize("args, match", [
    ((SPACE, 0, 0), "n: expected a positive integer"),
    ((SPACE, 2.5, 0), "n: expected a positive integer"),
    ((SPACE, 4, -1), "seed: expected a non-negative integer"),
    ((SPACE, 4, "a"), "seed: expected a non-negative integer"),
    (((), 4, 0), "non-empty tuple"),
    (((SPACE[0], SPACE[0]), 4, 0), "'learning_rate' appears more than once"),
])
def test_sample_errors(args, match):
    with pytest.raises(ValueError, match=match):
        search.sample(*args)
