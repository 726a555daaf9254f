"""lmvae.training: a short real run, atomic checkpoints and gradient clipping."""

from __future__ import annotations

import json
import os

import pytest
import torch
from support import CORPUS

import lmvae.training.state as training_state
from lmvae import LanguageVAE
from lmvae.data import split_corpus
from lmvae.errors import DataError
from lmvae.evaluation import evaluate
from lmvae.precision import cpu_has_fast_bf16
from lmvae.train_config import TrainConfig
from lmvae.training import train

# -- a real, short run ----------------------------------------------------------------------------


def _config(**kw):
    base = {
        "epochs": 2,
        "batch_size": 8,
        "lr": 3e-3,
        "eval_decode_sentences": 4,
        "progress": False,
        "free_bits": 0.1,
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(make_vae, tmp_path_factory):
    train_texts, eval_texts = split_corpus(CORPUS, 0.1, 1000, seed=0)
    vae = make_vae("bert", "llama-gqa", decoder_max_length=12)
    out = tmp_path_factory.mktemp("run")
    lines = []
    result = train(vae, train_texts, eval_texts, _config(), out, log=lines.append)
    return {
        "vae": vae,
        "out": out,
        "result": result,
        "lines": lines,
        "train": train_texts,
        "eval": eval_texts,
    }


def test_run_writes_best_last_and_history_atomically(run):
    out = run["out"]
    # No .tmp / .old / .lock left.
    assert sorted(os.listdir(out)) == ["best", "history.jsonl", "last", "train_config.json"]
    for name in ("best", "last"):
        files = set(os.listdir(out / name))
        assert {"config.json", "model.safetensors", "trainer_state.json"} <= files
        assert not [f for f in files if f.startswith(".") or f.endswith((".tmp", ".bin", ".pt"))]
        loaded = LanguageVAE.from_pretrained(out / name)
        assert loaded.latent_size == 8
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and state["train_config"]["epochs"] == 2
    # The final weights are in last/.
    loaded = LanguageVAE.from_pretrained(out / "last")
    torch.testing.assert_close(loaded.encode(CORPUS[:3]), run["vae"].encode(CORPUS[:3]))


def test_history_records_eval_metrics_and_one_encoder_pass_per_sentence(run):
    lines = (run["out"] / "history.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in history] == [1, 2]
    assert history == run["result"].history
    for key in (
        "eval_bleu",
        "eval_exact_match",
        "eval_token_accuracy",
        "eval_kl",
        "eval_active_units",
        "eval_neg_elbo",
        "train_loss",
    ):
        assert all(key in r for r in history), key
        assert all(isinstance(r[key], float) for r in history), key
    n_train = len(run["train"])
    assert history[0]["encoder_passes"] == n_train
    assert history[1]["encoder_passes"] == n_train  # epoch 2 reused every cached feature
    assert history[1]["step"] == 2 * -(-n_train // 8)
    assert all(0.0 <= r["eval_token_accuracy"] <= 1.0 for r in history)
    assert len(run["lines"]) == 2 and run["lines"][0].startswith("epoch 1")
    best = run["result"].best_epoch
    assert history[best - 1]["eval_neg_elbo"] == min(r["eval_neg_elbo"] for r in history)


def test_evaluate_metrics(run):
    with_decoding = evaluate(run["vae"], run["eval"], decode_sentences=2)
    without = evaluate(run["vae"], run["eval"], decode_sentences=0)
    assert {"recon_nll", "kl", "neg_elbo", "perplexity", "token_accuracy"} <= set(without)
    assert "bleu" not in without and "bleu" in with_decoding
    assert without["neg_elbo"] == pytest.approx(without["recon_nll"] + without["kl"])
    assert without["recon_nll"] == pytest.approx(with_decoding["recon_nll"])
    assert not run["vae"].training  # evaluate restores the mode


def test_train_without_sentences_is_a_data_error(make_vae):
    with pytest.raises(DataError, match="no training sentences"):
        train(make_vae("bert", "gpt2"), [], config=_config())


def test_interrupted_save_keeps_the_previous_checkpoint(make_vae, tmp_path, monkeypatch):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    calls = {"n": 0}
    original = training_state.save_pretrained

    def flaky(model, directory, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:  # epoch 1 wrote best/ and last/; epoch 2's saves fail midway
            original(model, directory, **kwargs)
            raise OSError("disk full")
        return original(model, directory, **kwargs)

    monkeypatch.setattr(training_state, "save_pretrained", flaky)
    config = _config(eval_decode_sentences=0)
    with pytest.raises(OSError, match="disk full"):
        train(vae, CORPUS[:16], CORPUS[16:20], config, tmp_path)
    state = json.loads((tmp_path / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 1
    LanguageVAE.from_pretrained(tmp_path / "last")  # still a complete, loadable model


def test_gradients_are_clipped_after_backward(make_vae, monkeypatch):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    params = [p for p in vae.parameters() if p.requires_grad]
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        had_grads = all(p.grad is not None for p in params)
        result = original(parameters, max_norm, *args, **kwargs)
        norm = torch.norm(torch.stack([p.grad.norm() for p in params])).item()
        seen.append((had_grads, float(result), norm, max_norm))
        return result

    # A single-process run clips with torch directly (Accelerate's does the same underneath).
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    config = _config(epochs=1, max_grad_norm=1e-3)
    train(vae, CORPUS[:16], [], config)
    assert len(seen) == 2  # one per optimiser step (16 sentences / batch 8)
    for had_grads, before, after, max_norm in seen:
        assert had_grads  # called after backward
        assert before > max_norm  # the raw norm really needed clipping
        assert after <= max_norm * (1 + 1e-4)

    seen.clear()
    train(vae, CORPUS[:16], [], _config(epochs=1, max_grad_norm=0.0))
    assert seen == []  # 0 disables clipping


def test_tiny_max_grad_norm_bounds_the_first_update(make_vae):
    """AdamW's first step is lr * g / (|g| + eps): with gradients clipped far below eps the
    update is far below lr, while without clipping it is about lr per weight."""

    def first_update(max_grad_norm):
        vae = make_vae("bert", "gpt2", decoder_max_length=8)
        before = {k: v.clone() for k, v in vae.trainable_state_dict().items()}
        config = _config(
            epochs=1,
            batch_size=16,
            max_grad_norm=max_grad_norm,
            warmup_ratio=0.0,
            lr_schedule="constant",
        )
        train(vae, CORPUS[:16], [], config)
        after = vae.trainable_state_dict()
        return max((after[k] - v).abs().max().item() for k, v in before.items())

    assert first_update(1e-12) < 1e-3 * 3e-3
    assert first_update(0.0) > 0.5 * 3e-3


def _interrupt_after_epoch_one(monkeypatch):
    original = training_state.save_pretrained
    calls = {"n": 0}

    def flaky(model, directory, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise KeyboardInterrupt
        return original(model, directory, **kwargs)

    monkeypatch.setattr(training_state, "save_pretrained", flaky)


def test_resumed_run_repeats_the_uninterrupted_one(make_vae, tmp_path, monkeypatch):
    train_texts, eval_texts = CORPUS[:20], CORPUS[20:24]
    config = _config(eval_decode_sentences=0)

    def fresh():
        return make_vae("bert", "qwen2", decoder_max_length=10)

    full = fresh()
    train(full, train_texts, eval_texts, config, tmp_path / "full")

    with monkeypatch.context() as m:
        _interrupt_after_epoch_one(m)
        with pytest.raises(KeyboardInterrupt):
            train(fresh(), train_texts, eval_texts, config, tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "last" / "trainer_state.json").read_text())["epoch"] == 1

    resumed = fresh()
    result = train(resumed, train_texts, eval_texts, config, tmp_path / "cut", resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2]
    for k, v in full.trainable_state_dict().items():
        torch.testing.assert_close(resumed.trainable_state_dict()[k], v, msg=k)

    def history(run):
        lines = (tmp_path / run / "history.jsonl").read_text().splitlines()
        drop = ("train_seconds", "train_sents_per_s", "encoder_passes")
        return [{k: v for k, v in json.loads(x).items() if k not in drop} for x in lines]

    assert [r["epoch"] for r in history("cut")] == [1, 2]
    for a, b in zip(history("cut"), history("full"), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_gradient_accumulation_steps_at_every_epoch_end(make_vae):
    vae = make_vae("bert", "gpt2", decoder_max_length=8)
    config = _config(batch_size=4, gradient_accumulation_steps=2, eval_decode_sentences=0)
    result = train(vae, CORPUS[:20], [], config)  # 5 batches per epoch
    assert [r["step"] for r in result.history] == [3, 6]


@pytest.mark.parametrize(
    ("metric", "pick"),
    [("loss", min), ("neg_elbo", min), ("recon_nll", min), ("bleu", max)],
)
def test_best_checkpoint_follows_the_chosen_metric(make_vae, tmp_path, metric, pick):
    train_texts, eval_texts = split_corpus(CORPUS, 0.1, 1000, seed=0)
    vae = make_vae("bert", "gpt2", decoder_max_length=12)
    result = train(vae, train_texts, eval_texts, _config(epochs=4, best_metric=metric), tmp_path)
    scores = [r[f"eval_{metric}"] for r in result.history]
    assert result.best_epoch == scores.index(pick(scores)) + 1
    state = json.loads((tmp_path / "best" / "trainer_state.json").read_text())
    assert state["epoch"] == result.best_epoch


def test_eval_loss_floors_the_kl_per_dimension(run):
    metrics = evaluate(run["vae"], run["eval"], decode_sentences=0, free_bits=5.0, beta=0.5)
    # Every dimension's KL is far below 5 nats here, so the floor replaces all of them.
    assert metrics["loss"] == pytest.approx(metrics["recon_nll"] + 0.5 * 5.0 * 8)
    plain = evaluate(run["vae"], run["eval"], decode_sentences=0)
    assert plain["loss"] == pytest.approx(plain["neg_elbo"], rel=1e-5)


# torch's inductor imports torch.utils.mkldnn, which uses torch.jit.script_method (torch 2.13).
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_training_pass_trains_as_the_eager_one(make_vae):
    """TrainConfig.compile runs the soft prompt's cache-free training pass through
    torch.compile: the same run within float tolerance, evaluation and decoding eager."""
    histories = []
    for compiled in (False, True):
        vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_max_length=12)
        config = TrainConfig(
            epochs=2,
            batch_size=8,
            lr=3e-3,
            progress=False,
            compile=compiled,
            eval_decode_sentences=2,
            mixed_precision="no",
        )
        result = train(vae, CORPUS[:24], CORPUS[24:28], config)
        histories.append(result.history)
        assert (vae.decoder._compiled_base is not None) == compiled
    for eager, compiled in zip(*histories, strict=True):
        for key in ("train_recon", "train_kl", "eval_recon_nll"):
            assert compiled[key] == pytest.approx(eager[key], rel=1e-3, abs=1e-3), key


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_packed_batches_train_as_the_padded_ones(make_vae, precision):
    """TrainConfig.pack lays each batch's sentences end to end (lmvae.packing): the same run
    within float tolerance (bf16: the rounding of other matmul shapes), no step sees padding,
    and a later run without pack trains padded again."""
    if precision == "bf16" and not cpu_has_fast_bf16():
        pytest.skip("bf16 training on CPU is held in bf16 only where the CPU has native bf16")
    histories = []
    for pack in (False, True, False):
        vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_max_length=12)
        if len(histories) == 2:
            vae.decoder.pack = True  # left on by an earlier run
        config = TrainConfig(
            epochs=2,
            batch_size=8,
            lr=3e-3,
            progress=False,
            pack=pack,
            eval_decode_sentences=2,
            mixed_precision=precision,
        )
        result = train(vae, CORPUS[:24], CORPUS[24:28], config)
        histories.append(result.history)
        assert vae.decoder.pack == pack
    tol = 1e-3 if precision == "no" else 3e-2
    for padded, packed, again in zip(*histories, strict=True):
        for key in ("train_recon", "train_kl", "eval_recon_nll"):
            assert packed[key] == pytest.approx(padded[key], rel=tol, abs=tol), key
            assert again[key] == padded[key], key


def test_packing_is_on_by_default_wherever_the_decoder_allows_it(make_vae, monkeypatch):
    """pack=None (the default): a soft-prompt decoder trains packed; prefix slots, or a family
    whose attention fails the packing check, train padded with a note and no error."""
    import lmvae.prompt_pass
    from lmvae.errors import ConfigError

    config = TrainConfig(epochs=1, batch_size=8, progress=False, eval_decode_sentences=0)
    assert config.pack is None
    prompt = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_max_length=12)
    train(prompt, CORPUS[:8], (), config)
    assert prompt.decoder.pack
    prefix = make_vae("bert", "gpt2")
    result = train(prefix, CORPUS[:8], (), config)
    assert not prefix.decoder.pack and not any("padded" in n for n in result.notes)

    def leaky(name, *args):
        raise ConfigError(f"packing does not work with this decoder ({name})")

    monkeypatch.setattr(lmvae.prompt_pass, "check_packing", leaky)
    vae = make_vae("bert", "llama-gqa", decoder_injection="prompt", decoder_max_length=12)
    result = train(vae, CORPUS[:8], (), config)
    assert not vae.decoder.pack
    assert any(n.startswith("batches are padded: packing does not work") for n in result.notes)
    with pytest.raises(ConfigError, match="packing does not work"):  # asked for: an error
        train(vae, CORPUS[:8], (), TrainConfig(epochs=1, progress=False, pack=True))


def test_packing_needs_the_soft_prompt(make_vae):
    from lmvae.errors import ConfigError

    vae = make_vae("bert", "gpt2")  # prefix slots: the training pass reads a cache
    with pytest.raises(ConfigError, match="packing applies to the soft prompt"):
        train(vae, CORPUS[:8], (), TrainConfig(epochs=1, progress=False, pack=True))


def test_compile_needs_the_soft_prompt(make_vae):
    from lmvae.errors import ConfigError

    vae = make_vae("bert", "gpt2")  # prefix slots: the training pass fills a cache
    with pytest.raises(ConfigError, match="soft prompt"):
        train(vae, CORPUS[:8], (), TrainConfig(epochs=1, progress=False, compile=True))
