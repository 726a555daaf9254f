"""lmvae.training.runfolder: a run folder is never clobbered or shared; checked before any
write, in the library and in ``lmvae train``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lmvae.cli import main
from lmvae.errors import ConfigError
from lmvae.training.runfolder import RunFolderBusy, check_run_folder, clear_run, run_lock


def _finished_run(out):
    (out / "best").mkdir(parents=True)
    (out / "last").mkdir()
    (out / "last" / "trainer_state.json").write_text("{}")
    (out / "history.jsonl").write_text('{"epoch": 1}\n')
    return out


def test_a_new_run_starts_only_in_an_empty_or_new_folder(tmp_path):
    check_run_folder(tmp_path / "new", resume=False, overwrite=False)
    check_run_folder(tmp_path, resume=False, overwrite=False)  # empty
    out = _finished_run(tmp_path / "run")
    with pytest.raises(ConfigError, match="not empty.*best.*--resume.*--overwrite"):
        check_run_folder(out, resume=False, overwrite=False)
    check_run_folder(out, resume=False, overwrite=True)
    check_run_folder(out, resume=True, overwrite=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_run_folder(tmp_path / "afile", resume=False, overwrite=False)


def test_resume_needs_something_to_resume(tmp_path, capsys):
    for folder in (tmp_path / "none", tmp_path):
        with pytest.raises(ConfigError, match="nothing to resume"):
            check_run_folder(folder, resume=True, overwrite=False)
    out = _finished_run(tmp_path / "run")
    assert main([*_train_argv(out), "--resume", "--overwrite"]) == 2


def test_overwrite_clears_only_the_runs_own_entries(tmp_path):
    out = _finished_run(tmp_path)
    (out / "notes.txt").write_text("mine")
    clear_run(out)
    assert sorted(os.listdir(out)) == ["notes.txt"]


def _train_argv(out):
    # Backbones that do not exist: the folder is checked before anything loads.
    return ["train", "--encoder", "e", "--decoder", "d", "--data", "x.txt", "--out", str(out)]


def test_lmvae_train_refuses_a_finished_run_and_changes_nothing(tmp_path, capsys):
    out = _finished_run(tmp_path / "run")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(_train_argv(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*_train_argv(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert not (out / "train_config.json").exists()


def test_the_lock_is_reentrant_in_one_process_and_released(tmp_path):
    with run_lock(tmp_path), run_lock(tmp_path):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()
    assert os.listdir(tmp_path) == []


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lmvae.training.runfolder import run_lock
    with run_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_second_run_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(
    tmp_path, capsys
):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"process {holder.pid} on"), run_lock(tmp_path):
            pass
        assert main([*_train_argv(tmp_path), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by process {holder.pid}" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left behind by the killed run ...
    with run_lock(tmp_path):  # ... and not in the way: the kernel dropped its lock
        pass
