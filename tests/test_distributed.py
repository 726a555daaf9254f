"""lmvae.distributed and sharded training: two CPU processes (gloo) train the weights one
process trains with the same global batch, each on its own half of every batch."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from support import assert_same_runs

from lmvae import distributed
from lmvae.distributed import Processes

HELPER = Path(__file__).parent / "distributed_helper.py"


def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(backbones, tmp_path):
    enc, dec = str(backbones.encoder("bert")), str(backbones.decoder("gpt2"))
    one, two = tmp_path / "one", tmp_path / "two"
    start = time.perf_counter()
    # 32 training sentences, global batch 8, 2 epochs: 8 optimizer steps and 2 evaluations.
    code = distributed.launch([sys.executable, str(HELPER), enc, dec, str(two), "4", "2"], 2)
    assert code == 0
    sharded = time.perf_counter() - start
    sys.path.insert(0, str(HELPER.parent))
    from distributed_helper import run

    alone = run(enc, dec, one, 8, 2)
    seen = [json.loads((two / f"seen-{r}.json").read_text()) for r in range(2)]
    # In each epoch, each process encoded its own half of the training sentences.
    assert len(seen[0]["sentences"]) == len(seen[1]["sentences"]) == 32
    for epoch in range(2):
        first, second = ({*s["sentences"][16 * epoch : 16 * (epoch + 1)]} for s in seen)
        assert len(first) == len(second) == 16 and not first & second
        assert first | second == set(alone["sentences"])
    # DDP synchronises the trainable heads alone, never the frozen backbones.
    for s in seen:
        assert s["synced_bytes"] == s["trainable_bytes"] > 0
    # Same weights after 8 steps, up to float rounding of sums taken in another order; only
    # the main process wrote the run, and the history matches (timings aside).
    assert_same_runs(one, two)
    assert sharded < 600


def test_shards_are_disjoint_and_cover_every_batch():
    batches = [list(range(i, i + 8)) for i in range(0, 40, 8)] + [[40, 41, 42], [43]]
    shards = [Processes(r, 2).shard_batches(batches) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == Processes(0, 2).batch_count(44, 8) == 6
    for whole, a, b in zip(batches, *shards, strict=False):
        assert sorted(a + b) == whole and not set(a) & set(b)
    assert Processes().shard_batches(batches) == batches  # one process: everything
    assert Processes().batch_count(44, 8) == 6


def test_num_processes_relaunches_the_same_command_without_the_option(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed, "launch", lambda cmd, n: calls.append((cmd, n)) or 0)
    argv = ["python", "-m", "lmvae", "train", "--num-processes", "2", "--out", "r", "--x=1"]
    monkeypatch.setattr(sys, "orig_argv", argv)
    assert distributed.relaunch_without("--num-processes", 2) == 0
    monkeypatch.setattr(sys, "orig_argv", [*argv[:4], "--num-processes=2", *argv[6:]])
    distributed.relaunch_without("--num-processes", 2)
    expected = [sys.executable, "-m", "lmvae", "train", "--out", "r", "--x=1"]
    assert calls == [(expected, 2), (expected, 2)]


def test_python_m_lmvae_is_the_command_line():
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "lmvae", "train", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--num-processes" in done.stdout
