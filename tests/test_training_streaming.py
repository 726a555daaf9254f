"""Training on a streamed corpus (lmvae.streaming.LineCorpus): the same weights as the corpus
in memory, --max-steps with step-defined schedules, exact resume, and `lmvae train --stream`."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file
from support import CORPUS

import lmvae.training.loop as loop
import lmvae.training.setup as setup
from lmvae.cli import main
from lmvae.data import read_corpus
from lmvae.errors import ConfigError, TrainingInterrupted
from lmvae.objective import cyclical_beta
from lmvae.schedule import lr_factor
from lmvae.streaming import open_stream
from lmvae.train_config import TrainConfig
from lmvae.training import train

TIMINGS = ("train_seconds", "train_sents_per_s")
HELD_OUT = CORPUS[30:34]


def _config(**kw):
    base = dict(epochs=2, batch_size=4, lr=3e-3, free_bits=0.1, eval_decode_sentences=2)
    return TrainConfig(**{**base, "progress": False, **kw})


def _file(tmp_path):
    """CORPUS[:22] with what a real file holds: blank lines, CRLF, no final newline."""
    path = tmp_path / "corpus.txt"
    lines = [*CORPUS[:10], "", "  ", *CORPUS[10:22]]
    path.write_bytes("\r\n".join(lines).encode())
    return path


def _fresh(make_vae):
    return make_vae("bert", "gpt2", encoder_layer=-1, decoder_max_length=10)


def _history(result):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in result.history]


def _same_weights(a, b):
    sa, sb = a.trainable_state_dict(), b.trainable_state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("accumulation", [1, 2])
def test_a_streamed_run_ends_with_the_weights_of_the_run_in_memory(
    make_vae, tmp_path, accumulation
):
    path = _file(tmp_path)
    config = _config(gradient_accumulation_steps=accumulation)
    in_memory, streamed = _fresh(make_vae), _fresh(make_vae)
    listed = train(in_memory, read_corpus(path), HELD_OUT, config)
    corpus, _ = open_stream(path)
    result = train(streamed, corpus, HELD_OUT, config)
    _same_weights(in_memory, streamed)
    assert _history(result) == _history(listed)


@pytest.mark.parametrize(
    ("max_steps", "accumulation", "steps"),
    [(8, 1, [6, 8]), (3, 1, [3]), (4, 2, [3, 4])],  # 6 batches of 4 per epoch
)
def test_max_steps_bounds_the_run_and_the_schedules_span_it(
    make_vae, tmp_path, monkeypatch, max_steps, accumulation, steps
):
    betas, factors = [], []

    def beta(step, total, *args):
        betas.append((step, total))
        return cyclical_beta(step, total, *args)

    def factor(step, **kw):
        factors.append((step, kw["total_steps"]))
        return lr_factor(step, **kw)

    monkeypatch.setattr(loop, "cyclical_beta", beta)
    monkeypatch.setattr(setup, "lr_factor", factor)
    corpus, _ = open_stream(_file(tmp_path))
    config = _config(epochs=50, max_steps=max_steps, gradient_accumulation_steps=accumulation)
    result = train(_fresh(make_vae), corpus, HELD_OUT, config)
    assert [r["step"] for r in result.history] == steps  # the last epoch cut short
    assert {total for _, total in betas} == {total for _, total in factors} == {max_steps}
    assert sorted({s for s, _ in betas}) == list(range(max_steps))
    assert [s for s, _ in factors] == list(range(max_steps + 1))  # LambdaLR: one per step
    warmup = int(config.warmup_ratio * max_steps)
    assert result.history[-1]["lr"] == pytest.approx(
        config.lr * lr_factor(max_steps, warmup, max_steps, "cosine"), abs=1e-12
    )


def test_a_streamed_run_resumes_mid_epoch_to_the_same_weights(make_vae, tmp_path, monkeypatch):
    corpus, _ = open_stream(_file(tmp_path))
    config = _config(save_every=2)
    full = _fresh(make_vae)
    train(full, corpus, HELD_OUT, config, tmp_path / "full")
    original, sent = loop.cyclical_beta, []

    def beta(at, *args):
        if at == 8 and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        return original(at, *args)

    with monkeypatch.context() as m:
        m.setattr(loop, "cyclical_beta", beta)
        with pytest.raises(TrainingInterrupted):
            train(_fresh(make_vae), corpus, HELD_OUT, config, tmp_path / "cut")
    resumed, lines = _fresh(make_vae), []
    train(resumed, corpus, HELD_OUT, config, tmp_path / "cut", lines.append, resume=True)
    assert any("resuming epoch 2 after batch 3 (step 9)" in line for line in lines), lines
    _same_weights(full, resumed)


def test_a_stream_refuses_what_needs_the_corpus_in_memory(make_vae, tmp_path):
    corpus, _ = open_stream(_file(tmp_path))
    with pytest.raises(ConfigError, match="bucketing"):
        train(_fresh(make_vae), corpus, HELD_OUT, _config(bucket_batches=2))
    with pytest.raises(ConfigError, match="max_steps must be >= 0"):
        train(_fresh(make_vae), corpus, HELD_OUT, _config(max_steps=-1))


# -- the command line ---------------------------------------------------------------------------


def _argv(backbones, data, out, *extra):
    return [
        "train",
        *("--encoder", str(backbones.encoder("bert")), "--decoder"),
        *(str(backbones.decoder("gpt2")), "--data", str(data), "--out", str(out)),
        *("--batch-size", "4", "--latent-size", "8", "--max-length", "10", "--seed", "0"),
        *("--injection", "prefix", "--encoder-layer", "0", "--threads", "1", "--no-progress"),
        *extra,
    ]


def test_lmvae_train_stream_trains_as_the_file_in_memory(backbones, tmp_path, capsys):
    data, held = _file(tmp_path), tmp_path / "held.txt"
    held.write_text("\n".join(HELD_OUT))
    for name, extra in (("listed", ()), ("streamed", ("--stream",))):
        argv = _argv(backbones, data, tmp_path / name, "--eval-data", str(held), "--epochs", "2")
        assert main([*argv, *extra]) == 0
    err = capsys.readouterr().err
    assert "indexed 22 sentences" in err and "4 held out" in err
    a = load_file(tmp_path / "listed" / "last" / "model.safetensors")
    b = load_file(tmp_path / "streamed" / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lmvae_train_stream_with_max_steps_and_the_hash_split(backbones, tmp_path, capsys):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS))
    argv = _argv(backbones, data, tmp_path / "run", "--stream", "--max-steps", "5")
    assert main([*argv, "--eval-fraction", "0.2"]) == 0
    assert "held out by hash" in capsys.readouterr().err
    history = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [5]
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["max_steps"] == 5


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--stream", "--spacy", "pos"), "--stream reads plain sentences"),
        (("--stream", "--prior", "mixture", "--prior-label", "t"), "--stream reads plain"),
        (("--max-steps", "-1"), "max_steps must be >= 0"),
        (("--feature-cache-max-gb", "0"), "feature_cache_max_gb must be > 0"),
    ],
)
def test_bad_stream_options_are_one_line(backbones, tmp_path, capsys, extra, fragment):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS))
    assert main(_argv(backbones, data, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("table.csv", "text\na cat\n", "a streamed corpus is a .txt (one sentence per line)"),
        ("bad.txt", b"a cat\n\xff\n", "bad.txt:2 is not UTF-8 text"),
        ("hf:wikitext", None, "needs the datasets package"),
    ],
)
def test_bad_streamed_data_is_one_line(backbones, tmp_path, capsys, name, content, fragment):
    data = tmp_path / name if content is not None else name
    if isinstance(content, str):
        data.write_text(content)
    elif content is not None:
        data.write_bytes(content)
    assert main(_argv(backbones, data, tmp_path / "run", "--stream")) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
