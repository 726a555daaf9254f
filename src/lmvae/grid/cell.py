"""One cell of a study: build the model, train it (resuming a half-finished run), then measure
it the same way as every other cell.

A cell's folder::

    cells/<id>/
      run/            lmvae.train's run folder: best/, last/, history.jsonl
      trained.json    written when training is over (budget reached): a rerun goes on to measure
      report/         the probe report (report.html, report.json, maps)
      result.json     the cell's figures, written last: a rerun skips the cell
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmvae.grid.data import GridData, cell_corpus
from lmvae.grid.study import Cell, Study
from lmvae.textfiles import atomic_write

__all__ = ["RESULT", "read_result", "run_cell", "write_json"]

RESULT = "result.json"
TRAINED = "trained.json"
#: Figures of evaluate_model copied into the comparison table (the rest stay in result.json).
EVAL_KEYS = (
    "bleu",
    "exact_match",
    "token_accuracy",
    "loop_rate",
    "eos_rate",
    "recon_nll",
    "kl",
    "neg_elbo",
    "decoder_nll",
    "iw_nll",
    "active_units",
    "mutual_information",
    "perplexity",
    "prior_distinct_2",
)


def write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def read_result(folder: Path) -> dict | None:
    """The cell's result.json, or None when it has none (or a torn one)."""
    try:
        return json.loads((folder / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _build(study: Study, cell: Cell, train_data: Any, seed: int):
    """The cell's fresh model and its training corpus (annotated by spaCy where asked)."""
    from lmvae.conditioning import configure_conditions
    from lmvae.config import VAEConfig
    from lmvae.model import LanguageVAE

    cond = study.conditions[cell.condition]
    config = VAEConfig.create(
        study.backbone(cell.encoder, "encoder"),
        study.backbone(cell.decoder, "decoder"),
        cell.latent_size,
        **study.model,
    )
    corpus = configure_conditions(
        config,
        train_data,
        cond.labels or "encoder",
        spacy_attribute=cond.spacy,
        spacy_model=cond.spacy_model,
    )
    return LanguageVAE.from_config(config, seed=seed), corpus


def _train(study: Study, cell: Cell, model: Any, corpus: Any, held: Any, run: Path, log) -> None:
    """Train, or go on training: a run with a finished epoch or a step checkpoint (saved when
    SIGTERM or Ctrl-C stopped it) resumes, with what is left of the time budget."""
    from dataclasses import replace

    from lmvae.training import train
    from lmvae.training.runfolder import resumable
    from lmvae.training.state import read_history

    config = replace(study.train, seed=cell.seed)
    resume = resumable(run)
    if resume and config.max_minutes:
        spent = sum(r.get("train_seconds", 0.0) for r in read_history(run)) / 60
        config = replace(config, max_minutes=max(config.max_minutes - spent, 1e-6))
    train(model, corpus, held, config, run, log, resume=resume, overwrite=not resume)


def run_cell(
    study: Study, cell: Cell, data: GridData, folder: Path, log: Callable[[str], None]
) -> dict:
    """Train and measure one cell; returns (and writes) its result.  Raises on failure."""
    import torch

    from lmvae.checkpoint import load_trainable_weights
    from lmvae.evaluation import evaluate_model
    from lmvae.probes.attention import slot_attention_mass
    from lmvae.probes.cka import encoder_decoder_cka
    from lmvae.probes.records import LabelledProbeModel, model_needs
    from lmvae.probes.report import run_probes, write_report
    from lmvae.training.state import read_history

    started = time.perf_counter()
    cond = study.conditions[cell.condition]
    torch.manual_seed(cell.seed)
    train_corpus = cell_corpus(data.train, cell.condition, cond)
    held_corpus = cell_corpus(data.heldout, cell.condition, cond)
    model, train_corpus = _build(study, cell, train_corpus, cell.seed)
    run = folder / "run"
    if not (folder / TRAINED).is_file():
        _train(study, cell, model, train_corpus, held_corpus, run, log)
        write_json(folder / TRAINED, {"seconds": round(time.perf_counter() - started, 1)})
    load_trainable_weights(model, run / "best")
    model.eval()
    history = read_history(run)

    log(f"evaluating on {len(data.heldout)} held-out sentences")
    figures = evaluate_model(model, held_corpus, full=study.probes.full_eval, seed=cell.seed)
    probe_data = data.heldout.subset(range(min(study.probes.sentences, len(data.heldout))))
    probed = LabelledProbeModel(model, probe_data) if model_needs(model)["word_labels"] else model
    results = run_probes(
        model,
        probe_data,
        study.probes.report,
        max_sentences=study.probes.sentences,
        methods=study.probes.maps,
        history=history,
        seed=cell.seed,
        meta={"study": study.name, "cell": cell.id},
        log=log,
    )
    texts = data.heldout.texts + data.train.texts
    log(f"CKA over {min(study.probes.cka_sentences, len(texts))} sentences")
    results["cka"] = encoder_decoder_cka(model, texts[: study.probes.cka_sentences])
    attended = probe_data.texts[: study.probes.attention_sentences]
    results["slot_attention"] = slot_attention_mass(probed, attended)
    write_report(results, folder / "report")

    metrics = {k: figures[k] for k in EVAL_KEYS if k in figures}
    metrics.update(results.get("disentanglement", {}).get("scores", {}))
    metrics["cka_max"] = results["cka"]["max"]
    metrics["cka_mean"] = results["cka"]["mean"]
    metrics["slot_mass"] = results["slot_attention"]["mean"]
    result = {
        **cell_fields(cell),
        "status": "done",
        "error": None,
        "epochs": len(history),
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": round(sum(r.get("train_seconds", 0.0) for r in history), 1),
        "metrics": {k: _finite(v) for k, v in metrics.items()},
        "history": history,
        "cka": results["cka"],
        "slot_attention": results["slot_attention"],
        "examples": figures.get("examples", [])[:10],
        "report": "report/report.html",
    }
    write_json(folder / RESULT, _clean(result))
    return result


def cell_fields(cell: Cell) -> dict:
    return {
        "cell": cell.id,
        "encoder": cell.encoder,
        "decoder": cell.decoder,
        "condition": cell.condition,
        "latent_size": cell.latent_size,
        "seed": cell.seed,
    }


def _finite(value: Any) -> Any:
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any) -> Any:
    """NaN and infinities as null, all the way down: JSON has no spelling for them."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return _finite(value)
