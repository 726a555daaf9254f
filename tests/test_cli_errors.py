"""lmvae.cli.main, the CLI boundary: usage errors and every other failure end with exit code 2
and a message naming the problem, never a traceback; --debug / LMVAE_DEBUG shows one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lmvae.cli import main


def _usage_error(capsys, argv, *fragments):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    assert "Error:" in captured.err
    for fragment in fragments:
        assert fragment in captured.err, captured.err
    return captured.err


def test_no_arguments_prints_the_help(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert "Commands" in captured.out and "train" in captured.out
    assert captured.err == ""


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["generate", "m", "--format", "xml"], "--format"),
        (["generate", "m", "--strategy", "best"], "--strategy"),
        (["generate", "m", "-n", "many"], "'-n'"),
        (["generate", "m", "--top-p", "lots"], "--top-p"),
        (["generate"], "Missing argument"),
        (["generate", "m", "--frobnicate"], "No such option"),
        (["train", "--decoder", "d", "--out", "o"], "Missing option '--encoder'"),
        (["train", "--encoder", "e", "--decoder", "d", "--out", "o", "--epochs", "1.5"], "epochs"),
        (["train", "--encoder", "e", "--decoder", "d", "--out", "o", "--prior", "x"], "--prior"),
        (["interpolate", "m", "only-one"], "Missing argument"),
        (["encode", "m"], "Missing option '--data'"),
        (["evaluate", "m", "--data", "d", "--max-sentences", "-"], "--max-sentences"),
        (["corpus"], "Missing argument"),
        (["generate", "m", "--n"], "requires an argument"),
    ],
)
def test_usage_errors_exit_2_with_the_problem_named(capsys, argv, fragment):
    _usage_error(capsys, argv, fragment)


def test_help_of_a_command_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    assert "--encoder" in capsys.readouterr().out


def test_console_script_usage_error_in_a_subprocess():
    """The installed entry point (``python -m lmvae.cli``), not only main(): exit 2, no
    traceback."""
    env = {**os.environ, "LMVAE_DEBUG": ""}
    done = subprocess.run(
        [sys.executable, "-m", "lmvae.cli", "generate", "m", "--strategy", "best"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--strategy" in done.stderr
