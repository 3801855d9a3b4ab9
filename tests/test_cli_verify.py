"""``lab verify`` through ``lab.cli.main`` (and once as a real process, to see there is no traceback)."""

import json
import subprocess
import sys
import textwrap

import pytest

from lab.cli import main

QUICK = ["--steps", "20", "--dtype", "float32", "--seeds", "1"]
LR = ["--kwargs", '{"learning_rate": 1e-3}']

CANDIDATES = textwrap.dedent("""
    import jax
    import jax.numpy as jnp
    import optax
    from lab import optim

    def good_adam(learning_rate, b1=0.9, b2=0.999):
        return optim.adam(learning_rate, b1=b1, b2=b2)

    def bad_adam(learning_rate):
        return optim.adam(learning_rate, eps=0.0, eps_root=1e-8)  # eps inside the square root

    not_a_factory = 3


    def nan_sgd(learning_rate):  # BUG: a 0/0 that makes every update NaN
        def update(updates, state, params=None):
            return jax.tree.map(lambda g: g * jnp.nan, updates), state

        return optax.chain(optim.sgd(learning_rate),
                           optax.GradientTransformation(lambda p: optax.EmptyState(), update))


    def raises_key_error(learning_rate):
        return {}["b3"]


    def raises_runtime_error(learning_rate):
        raise RuntimeError("out of cheese\\nsecond line of the message")


    def returns_a_dict(learning_rate):
        return {"learning_rate": learning_rate}


    def lion(learning_rate: float, b1=0.9, b2=0.99, weight_decay=1e-3):  # as written from the paper
        def init(params):
            return jax.tree.map(jnp.zeros_like, params)

        def update(grads, mu, params=None):
            step = jax.tree.map(lambda g, m: jnp.sign(b1 * m + (1 - b1) * g), grads, mu)
            updates = jax.tree.map(lambda u, p: -learning_rate * (u + weight_decay * p), step, params)
            return updates, jax.tree.map(lambda g, m: b2 * m + (1 - b2) * g, grads, mu)

        return optax.GradientTransformation(init, update)


    def adam_torch_names(lr, betas=(0.9, 0.999), eps=1e-8):
        return optim.adam(lr, b1=betas[0], b2=betas[1], eps=eps)


    def update_raises(learning_rate):
        def update(updates, state, params=None):
            raise KeyError("no such slot")

        return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_optimizers.py").write_text(CANDIDATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_optimizers"


def test_builtin_table(capsys):
    assert main(["verify", "--optimizer", "sgd", *QUICK]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["optimizer", "settings", "dtype", "steps", "max", "rel"]
    rows = [line for line in lines if line.startswith("sgd ")]
    # 3 settings x (constant, schedule) x (float32, and complex64: optax runs SGD on complex parameters)
    assert len(rows) == 12 and all(row.endswith("PASS") for row in rows)
    assert sum(" complex64 " in row for row in rows) == 6
    assert "12/12 checks passed" in out


def test_builtin_json(capsys):
    assert main(["verify", "--optimizer", "adagrad", "--json", *QUICK]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True
    assert {r["optimizer"] for r in data["results"]} == {"adagrad"}
    row = data["results"][0]
    assert set(row) >= {"optimizer", "settings", "dtype", "steps", "max_rel_error", "tolerance", "passed"}
    assert row["steps"] == 20 and row["dtype"] == "float32"


def test_user_candidate_passes(capsys, user_module):
    argv = ["verify", "--candidate", f"{user_module}:good_adam", "--reference", "adam",
            "--kwargs", '{"learning_rate": 1e-3, "b1": 0.8}', *QUICK]
    assert main(argv) == 0
    assert "2/2 checks passed" in capsys.readouterr().out


def test_user_candidate_fails_with_diagnostics(capsys, user_module):
    argv = ["verify", "--candidate", f"{user_module}:bad_adam", "--reference", "adam",
            "--kwargs", '{"learning_rate": 1e-3}', *QUICK]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "where they parted" in out
    assert "step 0" in out and "candidate" in out and "reference" in out and "shape" in out


def test_user_candidate_json_failure(capsys, user_module):
    argv = ["verify", "--candidate", f"{user_module}:bad_adam", "--reference", "adam",
            "--kwargs", '{"learning_rate": 1e-3}', "--json", *QUICK]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False and "step 0" in data["results"][0]["failure"]


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def test_json_is_strict_when_a_check_fails_with_non_finite_errors(capsys, user_module):
    argv = ["verify", "--candidate", f"{user_module}:nan_sgd", "--reference", "sgd",
            "--kwargs", '{"learning_rate": 0.1}', "--json", *QUICK]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out
    data = json.loads(out, parse_constant=_no_constants)
    assert data["passed"] is False
    assert all(r["max_rel_error"] is None and not r["passed"] for r in data["results"])
    assert "step 0" in data["results"][0]["failure"]


@pytest.mark.parametrize(("args", "message"), [
    (["--candidate", "no_such_module_xyz:adam", "--reference", "adam"], "cannot import module"),
    (["--candidate", "my_optimizers:missing", "--reference", "adam"], "has no attribute 'missing'"),
    (["--candidate", "my_optimizers:not_a_factory", "--reference", "adam"], "not callable"),
    (["--candidate", "my_optimizers", "--reference", "adam"], "MODULE:ATTR"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adamz"], "no optimizer named 'adamz'"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--kwargs", "{learning_rate: 1}"],
     "not valid JSON"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--kwargs", "[1e-3]"],
     "JSON object"),
    (["--candidate", "my_optimizers:good_adam"], "go together"),
    (["--optimizer", "adamz"], "unknown optimizer 'adamz'"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--kwargs", '{"lr": 1}'],
     "--kwargs: candidate my_optimizers:good_adam has no argument 'lr' (its arguments: learning_rate, b1, "
     "b2)"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--candidate-kwargs", "{lr: 1}"],
     "--candidate-kwargs is not valid JSON"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--reference-kwargs", '{"lr": 1}'],
     "--reference-kwargs: optax.adam has no argument 'lr' (its arguments: learning_rate, b1, b2, eps"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", "--candidate-kwargs",
      '{"learning_rate": "fast"}'],
     "--candidate-kwargs: 'learning_rate' must be a number, true/false, null or a list of numbers, got "
     '"fast"'),
    (["--candidate", "my_optimizers:good_adam", "--reference", "adam", *LR, "--lr-arg", "lr"],
     "--lr-arg: candidate my_optimizers:good_adam has no argument 'lr'"),
    (["--candidate-kwargs", '{"lr": 1}'], "--candidate-kwargs and --reference-kwargs need --candidate"),
    (["--candidate", "my_optimizers:raises_key_error", "--reference", "adam", *LR],
     "candidate my_optimizers:raises_key_error raised KeyError: 'b3'"),
    (["--candidate", "my_optimizers:raises_runtime_error", "--reference", "adam", *LR],
     "candidate my_optimizers:raises_runtime_error raised RuntimeError: out of cheese"),
    (["--candidate", "my_optimizers:returns_a_dict", "--reference", "adam", *LR],
     "candidate my_optimizers:returns_a_dict returned dict, not an optax.GradientTransformation"),
    (["--candidate", "my_optimizers:update_raises", "--reference", "adam", *LR],
     "checking candidate my_optimizers:update_raises against adam failed: KeyError: 'no such slot'"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "chain", *LR],
     "optax.chain is not an optimizer"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "apply_updates", *LR],
     "optax.apply_updates is not an optimizer"),
    (["--candidate", "my_optimizers:good_adam", "--reference", "ScaleByAdamState", *LR], "not an optimizer"),
])
def test_bad_input_is_one_line_and_status_2(capsys, user_module, args, message):
    assert main(["verify", *args, *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_module_in_a_real_process_prints_no_traceback():
    # What the `lab` console script runs (lab.cli:main), in a fresh interpreter.
    code = "import sys; from lab.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "verify", "--candidate", "no_such_module_xyz:f",
                           "--reference", "adam"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "lab: error: cannot import module 'no_such_module_xyz': No module named 'no_such_module_xyz'"]


def test_a_float_only_factory_gets_verdicts_and_the_skipped_cases_are_said(capsys, user_module):
    # The issue's own command: a Lion written from the paper takes only a float learning rate.
    argv = ["verify", "--candidate", f"{user_module}:lion", "--reference", "lion", *LR, *QUICK]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(f"{user_module}:lion ")]
    assert [row.split()[-1] for row in rows] == ["PASS", "SKIP"]
    assert "1/1 checks passed; 1 skipped: the candidate my_optimizers:lion cannot take a schedule as " \
           "learning_rate (TypeError: bad operand type for unary -: 'function')" in out
    assert "--no-schedule" in out
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and [r["verdict"] for r in data["results"]] == ["PASS", "SKIP"]
    assert data["results"][1]["skipped"].startswith("the candidate my_optimizers:lion cannot take a schedule")
    assert data["results"][1]["max_rel_error"] is None


def test_each_side_its_own_arguments(capsys, user_module):
    argv = ["verify", "--candidate", f"{user_module}:adam_torch_names", "--reference", "adam",
            "--lr-arg", "lr", "--candidate-kwargs", '{"lr": 1e-3, "betas": [0.8, 0.99]}',
            "--reference-kwargs", '{"learning_rate": 1e-3, "b1": 0.8, "b2": 0.99}', *QUICK]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2/2 checks passed" in out
    assert "lr=0.001, betas=(0.8, 0.99) | reference: learning_rate=0.001" in out
    argv[argv.index("--reference-kwargs") + 1] = '{"learning_rate": 1e-3, "b1": 0.9, "b2": 0.99}'
    assert main(argv) == 1  # a different b1 on the reference's side: both cases part


def test_a_pytorch_optimizer_class_from_the_command_line(capsys):
    argv = ["verify", "--candidate", "torch.optim:Adam", "--reference", "adam", "--candidate-kwargs",
            '{"lr": 1e-3}', "--reference-kwargs", '{"learning_rate": 1e-3}', "--dtype", "float32",
            "--dtype", "bfloat16", "--steps", "20", "--seeds", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split()[-1] for line in out.splitlines() if line.startswith("torch.optim:Adam ")]
    assert rows == ["PASS", "(pass)", "PASS", "(pass)"]  # bfloat16 is reported, not counted
    assert "2/2 checks passed; 2 more reported in parentheses, not counted" in out


def test_a_pytorch_optimizer_that_follows_a_convention_is_named(capsys):
    argv = ["verify", "--candidate", "torch.optim:RMSprop", "--reference", "rmsprop", "--candidate-kwargs",
            '{"lr": 1e-3}', "--reference-kwargs", '{"learning_rate": 1e-3}', "--dtype", "float64",
            "--steps", "20", "--seeds", "1", "--no-schedule"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert ("known convention: RMSProp's ε outside the square root and RMSProp's decay: torch's default "
            "alpha=0.99: passes against optax.rmsprop(learning_rate=0.001, eps_in_sqrt=False, "
            "decay=0.99)") in out
    assert "1 skipped: --no-schedule" in out


def toy_sign_sgd(learning_rate: float):
    """A float-only sign SGD, registered as a throwaway catalogue entry."""
    import jax
    import jax.numpy as jnp
    import optax

    return optax.GradientTransformation(
        lambda p: optax.EmptyState(),
        lambda u, s, p=None: (jax.tree.map(lambda g: -learning_rate * jnp.sign(g), u), s))


@pytest.fixture
def toy():
    import optax

    from lab.optim import catalogue

    catalogue.register(catalogue.Entry("toy", toy_sign_sgd, optax.sign_sgd, verify=({"learning_rate": 0.1},),
                                       schedule=False))
    yield "toy"
    catalogue.unregister("toy")


def test_a_catalogue_entry_registered_at_run_time_is_verified(capsys, toy):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    listed = capsys.readouterr().out.split("check only this catalogue optimizer:")[1].split("--candidate")[0]
    assert "toy" in listed.replace(",", " ").split() and "adam" in listed
    assert main(["verify", "--optimizer", "toy", *QUICK]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("toy ")]
    assert [row.split()[-1] for row in rows] == ["PASS", "SKIP"]
    assert "1 skipped: the reference takes no learning-rate schedule (optax.toy)" in out


def test_without_torch_a_torch_candidate_gets_one_line_saying_how_to_install_it(capsys, tmp_path,
                                                                                 monkeypatch):
    (tmp_path / "torch_opts.py").write_text("import torch\n\nMySGD = torch.optim.SGD\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert main(["verify", "--candidate", "torch_opts:MySGD", "--reference", "sgd", *QUICK]) == 2
    err = capsys.readouterr().err
    assert err == ("lab: error: module 'torch_opts' imports torch: verifying a PyTorch optimizer needs "
                   "PyTorch: pip install -e '.[torch]'\n")
