"""``lab bench``: the JSON output, the table, reuse of stored summaries, and every bad input as one line
with exit status 2 and nothing written."""

import json
import os

import pytest

from lab import cli
from lab.bench import baselines
from lab.bench.workloads import WORKLOADS

# --quick's budget and seeds: the committed quick baselines' settings, so that they are reused.
QUICK = ["--workloads", "digits_softmax", "--quick", "--budget", "3", "--seeds", "2"]


SOFTMAX = "digits_softmax_quick"


@pytest.fixture(autouse=True)
def targets(monkeypatch):
    """The committed target of the quick softmax workload only: the other quick workloads have none here."""
    committed = baselines.load_targets
    monkeypatch.setattr(baselines, "load_targets",
                        lambda workloads: {k: v for k, v in committed(workloads).items() if k == SOFTMAX})
    return committed([WORKLOADS["digits_softmax"].quick()])[SOFTMAX]


def test_json_then_table_from_stored(tmp_path, capsys, targets):
    """The candidate is run; adam's summary is the committed baseline's (the same target and settings)."""
    out = str(tmp_path / "bench")
    args = ["bench", "--candidate", "optax:sgd", "--optimizers", "adam", *QUICK, "--out", out]
    assert cli.main([*args, "--json", "--no-figures"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"] == {"budget": 3, "seeds": 2, "quick": True}
    assert list(result["optimizers"]) == ["optax:sgd", "adam"]  # the candidate under its spec
    names = {"optax:sgd": {"learning_rate"}, "adam": {"learning_rate", "b1", "b2", "eps"}}
    for name, row in result["optimizers"].items():
        assert 0 <= row["score"] <= 1 and row["rank"] in (1.0, 1.5, 2.0)
        assert row["score_interval"][0] <= row["score"] <= row["score_interval"][1]
        cell = row["workloads"]["digits_softmax_quick"]
        assert cell["steps_to_target"] is None or 0 <= cell["steps_to_target"] <= 8
        assert len(cell["steps_to_target_per_seed"]) == 2
        assert 0 <= cell["final_validation"] <= 1 and 0 <= cell["final_test"] <= 1
        assert 0 <= cell["fraction_trials_reaching"] <= 1 and cell["target"] == targets
        assert cell["metric"] == "accuracy" and set(cell["best_hyperparameters"]) == names[name]
        assert cell["step_seconds"] > 0
    assert cli.main([*args, "--quiet", "--no-figures"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["optimizer", "score", "rank"] and "digits_softmax_quick" in table[0]
    assert {table[2].split()[0], table[3].split()[0]} == {"optax:sgd", "adam"}
    assert table[-1].endswith("2 stored summaries reused")


@pytest.mark.parametrize("args, message", [
    (["--workloads", "imagenet"], "--workloads: unknown workload 'imagenet'; valid: digits_softmax"),
    (["--optimizers", "adamm"], "unknown optimizer 'adamm'"),
    (["--candidate", "no_such_module_x:opt"], "--candidate: cannot import 'no_such_module_x'"),
    (["--candidate", "optax:no_such_optimizer"], "--candidate: 'optax' has no attribute"),
    (["--candidate", "adam:"], "--candidate: expected 'module:attr'"),
    (["--candidate", "optax:sgd", "--search-space", '{"beta": {"low": 0.1, "high": 0.9, "scale": "linear"}}'],
     "'beta' is not an argument of sgd"),
    (["--candidate", "optax:sgd", "--search-space",
      '{"learning_rate": {"low": 0.1, "high": 0.9, "scale": "cubic"}}'], "unknown scale 'cubic'"),
    (["--candidate", "optax:sgd", "--search-space",
      '{"learning_rate": {"low": 0.9, "high": 0.1, "scale": "linear"}}'], "learning_rate"),
    (["--candidate", "optax:sgd", "--search-space",
      '{"learning_rate": {"low": 0, "high": 0.1, "scale": "log"}}'], "learning_rate"),
    (["--candidate", "optax:sgd", "--search-space", "no/such/space.json"], "cannot read it"),
    (["--candidate", "optax:sgd", "--search-space", "{not json"], "not valid JSON"),
    (["--budget", "0"], "--budget: expected a positive integer, got 0"),
    (["--seeds", "-1"], "--seeds: expected a positive integer, got -1"),
    (["--workloads", "digits_mlp"], "workload digits_mlp_quick has no validation target"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "bench"
    base = ["bench", "--optimizers", "sgd", "--workloads", "digits_softmax", "--quick", "--out", str(out)]
    assert cli.main(base + args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("lab: error: ") and message in captured.err, captured.err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_out_not_writable_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["bench", "--optimizers", "sgd", *QUICK, "--out", str(blocker / "bench")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab: error: --out") and len(err.splitlines()) == 1


def test_help_states_the_protocol_defaults():
    """The help text (written without importing the bench) gives the defaults the bench uses."""
    from lab.bench.protocol import Settings
    from lab.cli_bench import QUICK_BUDGET, QUICK_SEEDS

    bench = cli.build_parser()._subparsers._group_actions[0].choices["bench"]
    text = " ".join(bench.format_help().split())
    assert f"(default {Settings.budget}; --quick {QUICK_BUDGET})" in text
    assert f"(default {Settings.seeds}; --quick {QUICK_SEEDS})" in text
