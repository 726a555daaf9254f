"""lmvae.cli.main, the CLI boundary: usage errors and every other failure end with exit code 2
and a message naming the problem, never a traceback; --debug / LMVAE_DEBUG shows one."""

from __future__ import annotations

import json
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


# -- every other failure: one line, exit 2; --debug shows the traceback ---------------------------


def _one_error_line(capsys, code, *fragments):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_debug_flag_and_environment_show_the_traceback(capsys, tmp_path, monkeypatch):
    missing = str(tmp_path / "none")
    _one_error_line(capsys, main(["generate", missing]), "not an lmvae model folder")
    for argv, env in ((["generate", missing, "--debug"], ""), (["generate", missing], "1")):
        monkeypatch.setenv("LMVAE_DEBUG", env)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error:")


def test_an_unexpected_exception_is_one_line(capsys, monkeypatch):
    import lmvae.cli.inference as inference

    def boom(*_):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(inference, "load_model", boom)
    _one_error_line(capsys, main(["generate", "m"]), "RuntimeError: something broke")
    monkeypatch.setattr(inference, "load_model", lambda *_: (_ for _ in ()).throw(MemoryError()))
    _one_error_line(capsys, main(["generate", "m"]), "out of memory")


@pytest.mark.parametrize(
    "device, fragment",
    [("banana", "unknown --device"), ("cuda:99", "cuda:99"), ("cpu:x", "unknown --device")],
)
def test_unusable_device_is_refused_before_loading(capsys, tmp_path, device, fragment):
    # The model folder does not exist: the device is checked first.
    code = main(["generate", str(tmp_path / "none"), "--device", device])
    _one_error_line(capsys, code, fragment)


def test_cuda_without_cuda(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["generate", str(tmp_path / "none"), "--device", "cuda:0"])
    _one_error_line(capsys, code, "no cuda device")


def _train(tmp_path, *extra):
    return ["train", "--encoder", "e", "--decoder", "d", "--data", "x.txt", *extra]


def test_out_at_an_existing_file_is_refused_first(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for argv in (
        _train(tmp_path, "--out", str(afile)),
        ["probe", "m", "--data", "demo", "--out", str(afile)],
        ["corpus", "wordnet", "--out", str(afile)],
        ["demo", "--out", str(afile)],
        ["evaluate", "m", "--data", "x.txt", "--out", str(tmp_path)],
        _train(tmp_path, "--out", str(afile / "below")),
    ):
        _one_error_line(capsys, main(argv), str(afile.parent))
    assert afile.read_text() == "keep me"


def test_out_in_a_read_only_folder_is_refused_first(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: make the write fail instead
        import errno
        import tempfile

        def read_only(*_, **__):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    else:
        locked.chmod(0o555)
    try:
        for argv in (
            _train(tmp_path, "--out", str(locked / "run")),
            ["probe", "m", "--data", "demo", "--out", str(locked / "report")],
            ["evaluate", "m", "--data", "x.txt", "--out", str(locked / "f.json")],
        ):
            _one_error_line(capsys, main(argv), "cannot write", str(locked))
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("size, fragment", [("1000000000", "latent_size"), ("-3", "latent_size")])
def test_absurd_latent_size_is_refused_before_loading(capsys, tmp_path, size, fragment):
    # The backbones do not exist: the size is checked before anything is loaded.
    argv = _train(tmp_path, "--out", str(tmp_path / "run"), "--latent-size", size)
    _one_error_line(capsys, main(argv), fragment)
    assert not (tmp_path / "run").exists()


def test_a_config_field_of_the_wrong_type(capsys, tmp_path, make_vae):
    folder = make_vae().save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["decoder"]["num_slots"] = "eight"
    (folder / "config.json").write_text(json.dumps(config))
    _one_error_line(capsys, main(["generate", str(folder), "-n", "1"]), "config.json")
    config["latent_size"] = "big"
    (folder / "config.json").write_text(json.dumps(config))
    _one_error_line(capsys, main(["generate", str(folder), "-n", "1"]), "config.json")


@pytest.mark.parametrize(
    "command",
    ["train", "encode", "reconstruct", "generate", "interpolate", "evaluate", "probe", "explore"],
)
def test_every_command_that_loads_a_model_takes_trust_remote_code(command):
    import typer.main

    from lmvae.cli import app

    click_command = typer.main.get_command(app).commands[command]
    options = {o for p in click_command.params for o in getattr(p, "opts", [])}
    assert {"--trust-remote-code", "--allow-pickle"} <= options


def test_explore_passes_trust_and_pickle_to_the_loader(monkeypatch, capsys):
    import lmvae.cli.explore as explore

    seen = {}

    def load_model(model, device, trust_remote_code=False, allow_pickle=False):
        seen.update(trust=trust_remote_code, pickle=allow_pickle)
        raise RuntimeError("stop here")

    monkeypatch.setattr(explore, "load_model", load_model)
    assert main(["explore", "m", "--trust-remote-code", "--allow-pickle"]) == 2
    assert seen == {"trust": True, "pickle": True}
    assert main(["explore", "m"]) == 2
    assert seen == {"trust": False, "pickle": False}
    assert "stop here" in capsys.readouterr().err


@pytest.mark.parametrize("lr", ["inf", "nan", "-inf"])
def test_non_finite_learning_rate_is_refused_before_loading(capsys, tmp_path, lr):
    argv = _train(tmp_path, "--out", str(tmp_path / "run"), "--lr", lr)
    _one_error_line(capsys, main(argv), "lr must be")
    assert not (tmp_path / "run").exists()
