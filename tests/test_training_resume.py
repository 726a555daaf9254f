"""Step checkpoints and exact mid-epoch resume (lmvae.training.steps): a run stopped by SIGTERM
after any step, or killed with -9 in the middle of an epoch, resumes and ends with the weights
(bit for bit, on CPU) and the history (timings aside) of the run that was never stopped."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file
from support import CORPUS

import lmvae.training.loop as loop
from lmvae.cli import main
from lmvae.errors import ConfigError, TrainingInterrupted
from lmvae.train_config import TrainConfig
from lmvae.training import train
from lmvae.training.runfolder import check_run_folder

TIMINGS = ("train_seconds", "train_sents_per_s")
TRAIN, HELD_OUT = CORPUS[:22], CORPUS[30:34]  # 6 batches of 4 per epoch, the last one of 2


def _config(**kw):
    base = dict(epochs=2, batch_size=4, lr=3e-3, free_bits=0.1, eval_decode_sentences=2)
    return TrainConfig(**{**base, "progress": False, "save_every": 2, **kw})


def _history(out):
    lines = (out / "history.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMINGS} for x in lines]


def _signal_at(monkeypatch, step, signum=signal.SIGTERM):
    """Send ``signum`` to this process, once, as the first batch after ``step`` optimizer
    steps begins (a second signal would abort the run)."""
    original, sent = loop.cyclical_beta, []

    def beta(at, *args):
        if at == step and not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)
        return original(at, *args)

    monkeypatch.setattr(loop, "cyclical_beta", beta)


@pytest.mark.parametrize(
    ("accumulation", "signal_at", "saved", "resumes"),
    [
        (1, 8, 9, "epoch 2 after batch 3 (step 9)"),  # epoch 2: last/ holds epoch 1
        (2, 1, 2, "epoch 1 after batch 4 (step 2)"),  # epoch 1: no last/ yet
    ],
)
def test_a_signal_saves_a_step_and_the_resumed_run_ends_as_the_uninterrupted_one(
    make_vae, tmp_path, monkeypatch, accumulation, signal_at, saved, resumes
):
    config = _config(gradient_accumulation_steps=accumulation)

    def fresh():
        return make_vae("bert", "gpt2", encoder_layer=-1, decoder_max_length=10)

    full = fresh()
    train(full, TRAIN, HELD_OUT, config, tmp_path / "full")

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as m:
        _signal_at(m, signal_at)
        with pytest.raises(TrainingInterrupted, match="SIGTERM stopped training") as stopped:
            train(fresh(), TRAIN, HELD_OUT, config, tmp_path / "cut")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert stopped.value.exit_code == 75
    # The step under way was finished and saved; with save_every 2, keep_last 2.
    steps = sorted(p.name for p in (tmp_path / "cut" / "steps").iterdir())
    assert steps[-1] == f"step-{saved:08d}" and len(steps) <= 2
    assert stopped.value.checkpoint == tmp_path / "cut" / "steps" / steps[-1]
    check_run_folder(tmp_path / "cut", resume=True, overwrite=False)

    resumed, lines = fresh(), []
    result = train(resumed, TRAIN, HELD_OUT, config, tmp_path / "cut", lines.append, resume=True)
    assert any(resumes in line for line in lines), lines
    for k, v in full.trainable_state_dict().items():
        assert torch.equal(resumed.trainable_state_dict()[k], v), k
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_a_step_checkpoint_refuses_other_batches(make_vae, tmp_path, monkeypatch):
    config = _config(epochs=1)
    with monkeypatch.context() as m:
        _signal_at(m, 1, signal.SIGINT)
        with pytest.raises(TrainingInterrupted, match="SIGINT"):
            train(make_vae(), TRAIN, HELD_OUT, config, tmp_path)
    assert not (tmp_path / "last").exists()
    with pytest.raises(ConfigError, match=r"other batches.*batch_size 4 \(now 5\)"):
        train(make_vae(), TRAIN, HELD_OUT, _config(batch_size=5), tmp_path, resume=True)


# -- the command line, killed with -9 in a subprocess -------------------------------------------

# Runs `lmvae train` and stops at a chosen step (as the batch after it begins), saying so in a
# marker file, until the test kills it.
PAUSED = textwrap.dedent(
    """
    import sys, time
    import lmvae.training.loop as loop
    from lmvae.cli import main

    marker, pause_at = sys.argv[1], int(sys.argv[2])
    original = loop.cyclical_beta

    def beta(step, *args):
        if step == pause_at:
            open(marker, "w").close()
            time.sleep(600)
        return original(step, *args)

    loop.cyclical_beta = beta
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.fixture(scope="module")
def cli_run(backbones, tmp_path_factory):
    """The argument list of a small `lmvae train` run (36 sentences, 4 held out: 9 batches of
    4 per epoch, a step checkpoint every 4 steps) and its uninterrupted run folder."""
    root = tmp_path_factory.mktemp("cli-resume")
    data = root / "corpus.txt"
    data.write_text("\n".join(CORPUS) + "\n")

    def argv(out):
        return [
            "train",
            *("--encoder", str(backbones.encoder("bert")), "--decoder"),
            *(str(backbones.decoder("gpt2")), "--data", str(data), "--out", str(out)),
            *("--epochs", "2", "--batch-size", "4", "--latent-size", "8", "--max-length", "12"),
            *("--injection", "prefix", "--encoder-layer", "0", "--save-every", "4"),
            *("--threads", "1", "--no-progress"),
        ]

    full = root / "full"
    assert _main_here([*argv(full), "--quiet"]) == (0, "")
    return argv, full


def _main_here(args):
    """``lmvae.cli.main`` in this process: its exit code and what it wrote on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def _same_run(out, full):
    a = load_file(out / "last" / "model.safetensors")
    b = load_file(full / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _history(out) == _history(full)


def test_kill_9_mid_epoch_then_resume_in_a_new_process(cli_run, tmp_path):
    argv, full = cli_run
    out, marker = tmp_path / "run", tmp_path / "paused"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Paused after 14 of 18 steps, in epoch 2 (batch 5 of 9), 2 steps after step-12 was saved.
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED, str(marker), "14", *argv(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    _, err = child.communicate()
    assert marker.exists() and child.returncode == -signal.SIGKILL, err[-3000:]
    assert sorted(p.name for p in (out / "steps").iterdir()) == [
        "step-00000008",
        "step-00000012",
    ]
    assert json.loads((out / "last" / "trainer_state.json").read_text())["epoch"] == 1

    resumed = subprocess.run(
        [sys.executable, "-m", "lmvae", *argv(out), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming epoch 2 after batch 3 (step 12)" in resumed.stderr
    assert "Traceback" not in resumed.stderr and "Warning" not in resumed.stderr
    _same_run(out, full)


def test_sigterm_stops_lmvae_train_with_one_line_and_code_75(cli_run, tmp_path, monkeypatch):
    argv, full = cli_run
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _signal_at(m, 10)  # epoch 2, batch 2 of 9
        code, err = _main_here([*argv(out), "--quiet"])
    assert code == 75
    assert err.strip().splitlines() == [
        f"SIGTERM stopped training in epoch 2 after step 11: saved {out}/steps/step-00000011; "
        "continue with --resume"
    ]
    code, err = _main_here([*argv(out), "--resume"])
    assert code == 0 and "resuming epoch 2 after batch 2 (step 11)" in err
    _same_run(out, full)


def test_a_resume_removes_what_unfinished_step_saves_left(tmp_path):
    from lmvae.training.state import recover_run

    steps = tmp_path / "steps"
    for name in (".step-00000004.tmp", ".step-00000002.del", "step-00000003"):
        (steps / name).mkdir(parents=True)
    (steps / "step-00000003" / "trainer_state.json").write_text("{}")
    assert recover_run(tmp_path) == ["removed steps/.step-00000004.tmp, left by an unfinished save"]
    assert sorted(p.name for p in steps.iterdir()) == ["step-00000003"]
    check_run_folder(tmp_path, resume=True, overwrite=False)  # a step checkpoint alone resumes


# Stands for a training process: counts the signals it gets, "saves" after the first one and
# exits with code 75, as lmvae train does.
WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    out = Path(sys.argv[1]) / os.environ["RANK"]
    got = []
    signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    out.write_text("ready")
    while not got:
        time.sleep(0.01)
    time.sleep(0.5)  # saving: a second signal now would abort the save
    out.write_text(str(len(got)))
    sys.exit(75)
    """
)


def test_the_launcher_passes_one_sigterm_on_to_each_process(tmp_path):
    import threading

    from lmvae.distributed import launch

    def stop_when_ready():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all((tmp_path / r).is_file() for r in ("0", "1")):
                os.kill(os.getpid(), signal.SIGTERM)  # to the launcher, this process
                return
            time.sleep(0.02)

    handler = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    assert launch([sys.executable, "-c", WORKER, str(tmp_path)], 2) == 75
    assert [(tmp_path / r).read_text() for r in ("0", "1")] == ["1", "1"]
    assert signal.getsignal(signal.SIGTERM) == handler
