"""The ``lab`` command line: help, version, the demo, and a bad argument as one line."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lab
from lab.cli import main


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lab")
    assert "lab demo" in out and "--version" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"optimizer-lab {lab.__version__}\n"


def test_demo_trains_and_reports(capsys):
    assert main(["demo", "--steps", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits MLP 64-128-10")
    assert lines[1].split() == ["step", "train", "loss", "test", "acc"]
    step, loss, acc = lines[2].split()
    assert step == "100" and math.isfinite(float(loss)) and 0.0 <= float(acc) <= 1.0
    final = re.fullmatch(r"final: train loss (\S+), test accuracy (\S+)", lines[-1])
    assert final is not None and len(lines) == 4
    # Learned something: below the loss of a uniform guess (log 10) and far above chance (0.1).
    assert float(final[1]) < math.log(10) and float(final[2]) >= 0.5


@pytest.mark.parametrize("steps", ["0", "-5", "ten"])
def test_bad_steps_is_a_one_line_error(capsys, steps):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--steps", steps])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("lab demo: error: argument --steps: expected a positive integer")


def test_console_script_help():
    script = Path(sys.executable).with_name("lab")  # installed beside the interpreter
    assert script.exists(), f"console script not installed at {script}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: lab")
