"""The update-step benchmark times what it says: lab's and optax's updates of each optimizer, on the
parameters it reports, and writes the JSON the docs read. Quick mode only; no timing is asserted."""

import importlib.util
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

from lab.optim import catalogue

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("update_step", ROOT / "benchmarks" / "update_step.py")
update_step = importlib.util.module_from_spec(_spec)
sys.modules["update_step"] = update_step  # dataclasses look their module up while it loads
_spec.loader.exec_module(update_step)

# One elementwise optimizer, and the structured ones the catalogue has (factored moments, matrices).
ELEMENTWISE = "adam"
STRUCTURED = [n for n in ("adafactor", "muon") if n in catalogue.names()]
NAMES = [ELEMENTWISE, *STRUCTURED]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick run's exit status and JSON, and the cases it timed (by optimizer name)."""
    path = tmp_path_factory.mktemp("bench") / "update_step.json"
    cases = {}

    def recording_prepare(*args, **kwargs):
        case = prepare(*args, **kwargs)
        cases[case.name] = case
        return case

    prepare = update_step.prepare
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(update_step, "prepare", recording_prepare)
        rc = update_step.main(["--quick", "--optimizers", ",".join(NAMES), "--out", str(path)])
    return rc, json.loads(path.read_text()), cases


def _size(shapes: dict) -> int:
    return sum(int(np.prod(s)) for s in shapes.values())


def test_quick_run_writes_every_optimizer_with_its_spread(quick_run):
    rc, out, _ = quick_run
    assert rc == 0
    assert out["quick"] is True and out["repeats"] == update_step.QUICK["repeats"]
    assert out["backend"] == jax.default_backend()
    assert out["copy_bandwidth_GBps"] == max(out["copy_bandwidth_runs_GBps"]) > 0
    assert out["params"] == _size(out["shapes"]["elementwise"])
    assert out["structured_params"] == _size(out["shapes"]["structured"])
    assert [r["optimizer"] for r in out["results"]] == NAMES
    for r in out["results"]:
        entry = catalogue.get(r["optimizer"])
        assert "error" not in r, r
        assert r["reference"] == entry.reference_name and r["settings"] == dict(entry.verify[0])
        assert r["params"] == _size(out["shapes"][r["kind"]])
        for who in ("lab", "optax"):
            low, median, high = r[f"{who}_ms"]
            q1, q3 = r[f"{who}_quartiles_ms"]
            assert 0 < low <= q1 <= median <= q3 <= high
        q1, median, q3 = r["ratio_paired"]
        assert 0 < q1 <= median <= q3
        assert r["ratio_median"] == pytest.approx(r["lab_ms"][1] / r["optax_ms"][1])
        assert r["verdict"] in ("slower", "within 10%", "unclear")
        assert r["max_rel_diff"] < 1e-4  # the two timed calls computed the same update


def test_elementwise_rows_carry_the_bandwidth_bound_and_structured_rows_do_not(quick_run):
    _, out, _ = quick_run
    rows = {r["optimizer"]: r for r in out["results"]}
    adam = rows[ELEMENTWISE]
    assert adam["kind"] == "elementwise"
    # Adam reads g, mu, nu and writes u, mu, nu: six float32 arrays, plus a few bytes of step count.
    assert 0 <= adam["bytes"] - 6 * 4 * adam["params"] < 64
    assert adam["bound_ms"] == pytest.approx(1e3 * adam["bytes"] / (1e9 * out["copy_bandwidth_GBps"]))
    assert adam["lab_fraction_of_bound"] == pytest.approx(adam["bound_ms"] / adam["lab_ms"][0])
    for name in STRUCTURED:
        assert rows[name]["kind"] == "structured"
        assert "bound_ms" not in rows[name] and "bytes" not in rows[name]


@pytest.mark.parametrize(("name", "arrays"), [("sgd", 2), ("momentum", 4), ("adamw", 7)])
def test_traffic_counts_the_arrays_an_update_reads_and_writes(name, arrays):
    # sgd: g -> u; momentum: g, m -> u, m; adamw: g, mu, nu, params -> u, mu, nu (hand counts).
    entry = catalogue.get(name)
    params = update_step.make_tree(update_step.QUICK["params"])
    grads = update_step.gradients(params)
    n = sum(p.size for p in jax.tree.leaves(params))
    for who, tx in update_step.build(entry).items():
        state = tx.init(params)
        fn = update_step.update_fn(entry, tx, who)
        assert 0 <= update_step.traffic(fn, grads, state, params, np.float32(1.0)) - arrays * 4 * n < 64


def test_classify_tells_elementwise_from_structured():
    assert update_step.classify(catalogue.get("adam"))[0] == "elementwise"
    if "lamb" in catalogue.names():  # per-leaf norms (dot products of vectors) are no matrix product
        assert update_step.classify(catalogue.get("lamb"))[0] == "elementwise"
    for name in STRUCTURED:
        assert update_step.classify(catalogue.get(name))[0] == "structured"


@pytest.mark.parametrize("name", NAMES)
def test_timed_calls_are_lab_and_optax_on_the_reported_parameters(name, quick_run):
    _, out, cases = quick_run
    entry, case = catalogue.get(name), cases[name]
    params = case.args["lab"][2]
    assert {k: list(p.shape) for k, p in params.items()} == out["shapes"][case.kind]
    outs = {who: fn(*case.args[who]) for who, fn in case.fns.items()}
    timed = {who: jax.tree.leaves(out[0]) for who, out in outs.items()}
    # Each timed call is its own library's update, rebuilt here from the catalogue entry: the same
    # state types (lab's and optax's differ) and the same numbers.
    kw = dict(entry.verify[0])
    for who, make in (("lab", entry.factory), ("optax", entry.reference)):
        grads, state, p, value = case.args[who]
        assert p is params
        tx, extra = make(**kw), {"value": value} if entry.needs_value else {}
        with jax.numpy_dtype_promotion("standard"):
            assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))
            expected = jax.jit(lambda *a, tx=tx, extra=extra: tx.update(*a, **extra))(grads, state, p)
        assert jax.tree.structure(outs[who]) == jax.tree.structure(expected)
        for t, e in zip(timed[who], jax.tree.leaves(expected[0]), strict=True):
            np.testing.assert_allclose(t, e, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(e))))
    # And lab's update is optax's: the same numbers, leaf by leaf, to float32 rounding.
    for lab, ref in zip(timed["lab"], timed["optax"], strict=True):
        assert lab.shape == ref.shape and np.all(np.isfinite(lab)) and np.max(np.abs(ref)) > 0
        np.testing.assert_allclose(lab, ref, rtol=0, atol=1e-5 * float(np.max(np.abs(ref))))


def test_an_unknown_optimizer_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        update_step.main(["--quick", "--optimizers", "adam,nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'nope'" in err and "valid names" in err and "adam" in err
