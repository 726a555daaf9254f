"""lmvae.training.tracking: figures to an experiment tracker (TensorBoard here), the trainer's
lines through ``logging``, and early stopping on the held-out metric."""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest
from support import CORPUS

import lmvae.training.loop as loop
from lmvae.cli import main
from lmvae.errors import ConfigError
from lmvae.train_config import TrainConfig
from lmvae.training import train


def _config(**kw):
    return TrainConfig(**{"batch_size": 4, "eval_decode_sentences": 2, "progress": False, **kw})


def test_tensorboard_gets_step_interval_and_epoch_figures(make_vae, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = _config(epochs=2, report_to="tensorboard", log_every=2)
    result = train(make_vae(), CORPUS[:16], CORPUS[30:34], config, tmp_path)  # 4 steps/epoch
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    step_tags = {"loss", "reconstruction", "kl", "beta", "lr", "sentences_per_s"}
    assert {f"train/{t}" for t in step_tags} <= tags
    assert {"epoch/train_loss", "epoch/train_kl", "eval/loss", "eval/bleu", "eval/kl"} <= tags

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    assert [s for s, _ in series("train/loss")] == [2, 4, 6, 8]
    assert [s for s, _ in series("eval/loss")] == [4, 8]
    for record, (_, value) in zip(result.history, series("eval/loss"), strict=True):
        assert value == pytest.approx(record["eval_loss"], rel=1e-6)
    # Each step figure is the mean since the last one: two of them average to the epoch's.
    for epoch, record in enumerate(result.history):
        halves = [v for _, v in series("train/loss")[2 * epoch : 2 * epoch + 2]]
        assert sum(halves) / 2 == pytest.approx(record["train_loss"], rel=1e-5)
    assert all(v > 0 for _, v in series("train/sentences_per_s"))


def test_a_missing_tracker_package_is_one_error_line_before_anything_runs(
    tmp_path, capsys, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    out = tmp_path / "run"
    argv = ["train", "--encoder", "e", "--decoder", "d", "--data", "x.txt", "--out", str(out)]
    assert main([*argv, "--report-to", "wandb"]) == 2
    assert capsys.readouterr().err == (
        "error: --report-to wandb needs the wandb package: pip install wandb\n"
    )
    assert not out.exists()
    with pytest.raises(ConfigError, match="report_to must be none, tensorboard, wandb or mlflow"):
        TrainConfig(report_to="comet").validate()
    with pytest.raises(ConfigError, match="needs the wandb package"):
        train(None, CORPUS, (), TrainConfig(report_to="wandb"))
    with pytest.raises(ConfigError, match="writes into the run folder"):
        train(None, CORPUS, (), TrainConfig(report_to="tensorboard"))


def test_early_stopping_after_patience_epochs_without_a_better_held_out_figure(
    make_vae, tmp_path, monkeypatch
):
    losses = iter([5.0, 4.0, 4.5, 4.2, 3.0, 2.0])
    monkeypatch.setattr(loop, "evaluate", lambda *args, **kwargs: {"loss": next(losses)})
    lines = []
    config = _config(epochs=6, batch_size=8, early_stopping_patience=2)
    result = train(make_vae(), CORPUS[:8], CORPUS[30:32], config, tmp_path, lines.append)
    reason = "early stopping: held-out loss has not improved for 2 epoch(s) (best at epoch 2)"
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.stopped == reason and result.best_epoch == 2
    assert lines[-1] == f"stopping after epoch 4: {reason}"
    saved = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r.get("stopped") for r in saved] == [None, None, None, reason]


def test_without_a_callback_the_trainer_logs_to_the_lmvae_logger(make_vae, caplog):
    with caplog.at_level(logging.INFO, logger="lmvae"):
        train(make_vae(), CORPUS[:8], (), _config(epochs=1, batch_size=8))
    lines = [r.getMessage() for r in caplog.records if r.name == "lmvae.training"]
    assert any(line.startswith("epoch 1 | loss") for line in lines), lines


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--save-every", "-1"], "save_every must be >= 0, got -1"),
        (["--keep-last", "0"], "keep_last must be >= 1, got 0"),
        (["--early-stopping-patience", "-2"], "early_stopping_patience must be >= 0, got -2"),
        (["--log-every", "0"], "log_every must be >= 1, got 0"),
    ],
)
def test_bad_step_and_tracking_options_are_one_error_line(tmp_path, capsys, option, message):
    argv = ["train", "--encoder", "e", "--decoder", "d", "--data", "x.txt"]
    assert main([*argv, "--out", str(tmp_path / "run"), *option]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
