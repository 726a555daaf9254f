"""lmvae.training.loop's guard against NaN and inf: a step whose loss or gradients are not
finite is skipped on the device and counted; too many in a row stop the run with the last
finite weights; history.jsonl and trainer_state.json stay valid JSON."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
from support import CORPUS

import lmvae.training.loop as loop
from lmvae.errors import TrainingDiverged
from lmvae.train_config import TrainConfig
from lmvae.training import train


def _config(**kw):
    base = {"epochs": 1, "batch_size": 4, "lr": 3e-3, "eval_decode_sentences": 0}
    return TrainConfig(**{**base, "progress": False, **kw})


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def _poison(monkeypatch, bad_calls):
    """Make the loss of the given (0-based) training batches NaN."""
    original = loop.elbo_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        terms = original(*args, **kwargs)
        if calls["n"] in bad_calls:
            terms.loss = terms.loss * float("nan")
        calls["n"] += 1
        return terms

    monkeypatch.setattr(loop, "elbo_loss", poisoned)


def _heads(vae):
    return {k: v.clone() for k, v in vae.trainable_state_dict().items()}


def test_a_few_nan_steps_are_skipped_and_counted(make_vae, tmp_path, monkeypatch):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    _poison(monkeypatch, {1, 2})
    result = train(vae, CORPUS[:16], CORPUS[16:20], _config(), tmp_path)
    record = result.history[0]
    assert record["skipped_steps"] == 2
    assert math.isfinite(record["train_loss"])  # the mean of the finite batches
    for tensor in vae.trainable_state_dict().values():
        assert torch.isfinite(tensor).all()
    assert _strict_json((tmp_path / "history.jsonl").read_text())[0]["skipped_steps"] == 2
    _strict_json((tmp_path / "last" / "trainer_state.json").read_text().replace("\n", " "))


def test_nan_in_a_row_stops_the_run_with_the_last_finite_weights(make_vae, tmp_path, monkeypatch):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    _poison(monkeypatch, set(range(1, 10_000)))  # the first step is fine, then all NaN
    before = {}

    original_step = loop.NonFiniteGuard.step

    def spy(self, optimizer, norm):
        if not before:  # weights after the first (finite) step are what must survive
            original_step(self, optimizer, norm)
            before.update(_heads(vae))
            return
        original_step(self, optimizer, norm)

    monkeypatch.setattr(loop.NonFiniteGuard, "step", spy)
    texts = CORPUS[:40] * 2
    with pytest.raises(TrainingDiverged, match="in a row had a non-finite"):
        train(vae, texts, [], _config(), tmp_path)
    for key, tensor in vae.trainable_state_dict().items():
        assert torch.equal(tensor, before[key]), key
    assert not (tmp_path / "history.jsonl").exists() or _strict_json(
        (tmp_path / "history.jsonl").read_text()
    )


def test_a_huge_learning_rate_never_writes_nan(make_vae, tmp_path):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    with contextlib.suppress(TrainingDiverged):
        train(vae, CORPUS[:32], CORPUS[32:36], _config(lr=1e30, epochs=2), tmp_path)
    for tensor in vae.trainable_state_dict().values():
        assert torch.isfinite(tensor).all()
    if (tmp_path / "history.jsonl").exists():
        _strict_json((tmp_path / "history.jsonl").read_text())


def test_nan_figures_in_a_record_become_null(tmp_path):
    from lmvae.training.state import json_safe

    record = {"epoch": 1, "eval_kl": float("nan"), "eval_bleu": float("inf"), "n": 3}
    assert json_safe(record) == {"epoch": 1, "eval_kl": None, "eval_bleu": None, "n": 3}
