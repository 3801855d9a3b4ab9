"""``lab list``, ``lab run``, ``lab figures``: output, and bad input answered in one line with status 2,
leaving nothing behind. (The full ``lab figures --quick`` run is in test_figures.py.)"""

import dataclasses
import json
import os

import pytest
from matplotlib.figure import Figure

from lab import plotting
from lab.cli import main
from lab.experiments import registry


def _exit_status(argv) -> int:
    """``main``'s status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _files(root) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def test_list_prints_every_experiment_with_a_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(registry())
    assert all(len(line.split()) > 3 for line in lines)


def test_unknown_experiment_is_one_line_listing_the_valid_ones(tmp_path, capsys):
    out, res = tmp_path / "out", tmp_path / "res"
    assert _exit_status(["run", "nope", "--out", str(out), "--results", str(res)]) == 2
    err = _one_line_error(capsys)
    assert "unknown experiment 'nope'" in err and "optimizers" in err and "verification" in err
    assert not out.exists() and not res.exists()


@pytest.mark.parametrize("flag", ["--seeds", "--steps"])
@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_non_positive_seeds_or_steps_are_rejected(tmp_path, capsys, flag, value):
    assert _exit_status(["run", "momentum", flag, value, "--out", str(tmp_path / "o")]) == 2
    assert "positive integer" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_setting_the_experiment_does_not_have_is_rejected(tmp_path, capsys):
    assert _exit_status(["run", "speed", "--seeds", "3", "--out", str(tmp_path / "o")]) == 2
    assert "has no --seeds" in _one_line_error(capsys)
    assert _exit_status(["run", "speed", "--all-optimizers", "--out", str(tmp_path / "o")]) == 2
    assert "has no --all-optimizers" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["run", "speed"], ["figures", "--quick"]])
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_unwritable_out_is_rejected_before_any_work(tmp_path, capsys, command, where):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = blocker if where == "file" else blocker / "figs"
    res = tmp_path / "res"
    assert _exit_status([*command, "--out", str(out), "--results", str(res)]) == 2
    assert "--out" in _one_line_error(capsys)
    assert not res.exists() and sorted(os.listdir(tmp_path)) == ["a_file"]


def test_unwritable_results_is_rejected(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert _exit_status(["run", "speed", "--out", str(tmp_path / "o"), "--results", str(blocker / "r")]) == 2
    assert "--results" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_run_speed_draws_its_figure_and_prints_a_table(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no benchmarks/results/sweep_cpu.json here: "not measured yet"
    assert main(["run", "speed", "--out", "figs", "--results", "res"]) == 0
    out = capsys.readouterr().out
    assert "not measured yet" in out and "12_speed.png" in out
    assert os.listdir("figs") == ["12_speed.png"]


class Broken(Figure):
    def savefig(self, *args, **kwargs):
        raise OSError("disk full")


def test_a_failing_draw_leaves_no_partial_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    speed = registry()["speed"]
    monkeypatch.setitem(registry(), "speed", dataclasses.replace(
        speed, figures=("12_speed.png", "x.png"),
        draw=lambda record: {"12_speed.png": Figure(), "x.png": Broken()}))
    with pytest.raises(OSError, match="disk full"):
        main(["run", "speed", "--out", "figs", "--results", "res"])
    assert not [f for f in _files("figs") if f.endswith((".png", ".tmp"))]


def test_save_writes_all_figures_or_none(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        plotting.save({"a.png": Figure(), "b.png": Broken()}, str(tmp_path))
    assert os.listdir(tmp_path) == []
    # A figure that cannot be put in place (a directory is in its way) leaves the others as they were.
    (tmp_path / "a.png").write_bytes(b"old")
    (tmp_path / "b.png").mkdir()
    with pytest.raises(OSError):
        plotting.save({"a.png": Figure(), "b.png": Figure()}, str(tmp_path))
    assert (tmp_path / "a.png").read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]
    os.rmdir(tmp_path / "b.png")
    assert plotting.save({"a.png": Figure(), "b.png": Figure()}, str(tmp_path)) == [
        str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_speed_draws_the_benchmark_when_it_was_measured(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("benchmarks/results")
    scaling = [{"runs": r, "seconds": 0.1 * r**0.8, "compile_seconds": 2.0} for r in (1, 8, 64, 512)]
    bench = {"runs": 128, "steps": 500, "lab_seconds": 1.5, "lab_compile_seconds": 2.0,
             "optax_loop_seconds": 60.0, "torch_seconds": None, "matmul_rate_fraction": 0.5, "device": "cpu",
             "scaling": scaling}
    with open("benchmarks/results/sweep_cpu.json", "w") as f:
        json.dump(bench, f)
    assert main(["run", "speed", "--out", "figs", "--results", "res"]) == 0
    out = capsys.readouterr().out
    assert "128" in out and "60.0" in out and "not measured" not in out
    assert os.path.getsize("figs/12_speed.png") > 20_000
