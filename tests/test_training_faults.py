"""Faults during checkpoint writes, in a subprocess (tests/fault_helper.py): kill -9 at every
file-system step and after random delays, a full disk, a read-only run folder, and kills inside
real training runs that are then resumed.  Each must leave a run that resumes (checkpoints that
load, each finished epoch once in history) or a clear error.  Nothing here skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("fault_helper.py")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HELPER.parent)}
    proc = subprocess.run(
        [sys.executable, str(HELPER), str(work)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_kill_9_at_every_step_of_a_checkpoint_write_leaves_a_run_that_resumes(report):
    kills = report["kill_steps"]
    # history, then best/ and last/: staging, weights, config, card, optimizer, state, swap
    assert kills["points"] >= 20
    assert kills["problems"] == []


def test_kill_9_at_random_moments_leaves_a_run_that_resumes(report):
    assert report["kill_random"]["problems"] == []


def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_checkpoint(report):
    disk = report["full_disk"]
    assert disk["bytes"] > 0
    assert disk["problems"] == []
    cli = report["full_disk_cli"]
    assert cli["code"] == 2
    lines = cli["stderr"].strip().splitlines()
    assert lines[-1].startswith("error: ") and "No space left on device" in lines[-1]
    assert "Traceback" not in cli["stderr"]


def test_a_read_only_run_folder_is_refused_and_left_as_it_was(report):
    cli = report["read_only_cli"]
    assert cli["code"] == 2
    assert cli["stderr"].count("\n") == 1 and "cannot write" in cli["stderr"]
    api = report["read_only_api"]
    assert api["error"] is not None and "read-only" in api["message"].lower()
    assert report["read_only_unchanged"]
    assert report["read_only_problems"] == []


def test_a_kill_between_the_two_renames_of_a_swap_resumes_from_the_old_checkpoint(report):
    swap = report["swap_kill"]
    assert swap["killed"] and not swap["last"] and swap["old"]
    resumed = swap["resumed"]
    assert resumed["epochs"] == [1, 2] and resumed["file"] == [1, 2]
    assert any("put back from .last.old" in line for line in resumed["log"])
    assert any("resuming after epoch 1" in line for line in resumed["log"])


def test_a_kill_in_the_first_checkpoint_write_never_duplicates_history(report):
    first = report["first_write_kill"]
    assert first["killed"]
    assert first["resumed"]["error"] == "ConfigError"
    assert "before its first checkpoint" in first["resumed"]["message"]
    assert "--overwrite" in first["resumed"]["message"]
    assert first["overwritten"]["epochs"] == [1, 2] and first["overwritten"]["file"] == [1, 2]


# -- the same rules, in-process and without a model -----------------------------------------------
def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(text)
    return path


def test_a_swap_killed_between_its_renames_is_put_back_not_deleted(tmp_path):
    from lmvae.checkpoint import recover_swap, replace_directory

    _folder(tmp_path / ".last.old", "old")  # last/ was renamed away, the new one not in yet
    _folder(tmp_path / ".last.tmp", "new")
    assert recover_swap(tmp_path / "last")
    assert (tmp_path / "last" / "trainer_state.json").read_text() == "old"
    # An old copy beside a target only survived the final removal: it goes.
    _folder(tmp_path / ".last.old", "older")
    assert not recover_swap(tmp_path / "last") and not (tmp_path / ".last.old").exists()
    # replace_directory repairs first, so the complete old copy is never the one deleted.
    (tmp_path / "last").rename(tmp_path / ".last.old")
    replace_directory(tmp_path / ".last.tmp", tmp_path / "last")
    assert (tmp_path / "last" / "trainer_state.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_loading_a_checkpoint_lost_mid_swap_names_the_kept_copy(tmp_path):
    from lmvae.checkpoint import load_config
    from lmvae.errors import LoadError

    _folder(tmp_path / ".best.old", "{}")
    with pytest.raises(LoadError, match=r"interrupted.*\.best\.old.*--resume"):
        load_config(tmp_path / "best")


def test_recover_run_removes_what_unfinished_saves_left(tmp_path):
    from lmvae.training.runfolder import check_run_folder
    from lmvae.training.state import recover_run

    _folder(tmp_path / ".last.old", "{}")
    (tmp_path / ".best.tmp").mkdir()
    (tmp_path / ".history.jsonl.abc.tmp").write_text("half")
    check_run_folder(tmp_path, resume=True, overwrite=False)  # .last.old counts
    notes = recover_run(tmp_path)
    assert notes == [
        "removed .best.tmp, left by an unfinished save",
        "last/ put back from .last.old (a save was killed mid-swap)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_history_drops_a_torn_last_line_and_refuses_a_bad_one_inside(tmp_path):
    from lmvae.errors import DataError
    from lmvae.training.state import read_history

    (tmp_path / "history.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2]
    (tmp_path / "history.jsonl").write_text('{"epoch": 1}\nxx\n{"epoch": 2}\n')
    with pytest.raises(DataError, match="history.jsonl:2 is not a JSON record"):
        read_history(tmp_path)


def test_resume_after_a_kill_before_the_first_checkpoint_says_so(tmp_path):
    from lmvae.errors import ConfigError
    from lmvae.training.runfolder import check_run_folder

    (tmp_path / "history.jsonl").write_text('{"epoch": 1}\n')
    (tmp_path / ".last.tmp").mkdir()
    with pytest.raises(ConfigError, match="before its first checkpoint.*--overwrite"):
        check_run_folder(tmp_path, resume=True, overwrite=False)
