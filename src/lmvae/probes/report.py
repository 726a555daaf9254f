"""Run every probe on a trained model and write one report: ``report.html`` + ``report.json``.

:func:`run_probes` computes (it returns plain, JSON-ready results and draws nothing);
:func:`write_report` draws the figures and writes the folder::

    report/
      report.html          self-contained page: tables, figures, interactive cluster maps
      report.json          every figure in numbers
      clusters_<m>.png     static cluster maps (m = pca, tsne, umap)
      clusters_<m>.html    interactive cluster maps

The posterior of the probe sentences is computed once and shared by the latent-usage,
disentanglement, cluster and property probes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .arithmetic import latent_arithmetic
from .clusters import METHODS, cluster_scores, project
from .disentanglement import cap_values, disentanglement, role_factors
from .interpolation import interpolate
from .properties import probe_properties, sentence_properties
from .records import LabelledProbeModel, ProbeData, model_needs
from .sts import read_sts_pairs, sts_probe
from .traversal import traverse
from .usage import latent_usage

__all__ = ["PROBES", "find_history", "run_probes", "write_report"]

PROBES = (
    "reconstruction",
    "traversal",
    "interpolation",
    "arithmetic",
    "disentanglement",
    "clusters",
    "properties",
    "sts",
)


def find_history(model_path: str | Path) -> list[dict[str, Any]] | None:
    """The per-epoch training history of a model folder written by :func:`lmvae.train`:
    ``history.jsonl`` in the folder itself or in its parent (the run folder of ``best/``)."""
    path = Path(model_path)
    for folder in (path, path.parent):
        file = folder / "history.jsonl"
        if file.is_file():
            lines = file.read_text(encoding="utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
    return None


def _for_probing(vae: Any, data: ProbeData) -> tuple[Any, Any]:
    """The model the probes see and the data :func:`lmvae.evaluate` gets: word labels and
    categories go along where the model is conditioned on them."""
    config = getattr(vae, "config", None)
    ann = getattr(config, "annotations", None)
    prior = getattr(config, "prior", None)
    needs = model_needs(vae)
    needs_labels, needs_category = needs["word_labels"], needs["category"] is not None
    if not needs_labels and not needs_category:
        return vae, data.texts
    from ..annotations import AnnotatedCorpus

    if needs_labels and data.roles is None:
        raise ConfigError(
            "this model is conditioned on word labels: probe it with data that has them "
            "(JSONL with a per-word labels field, or --data demo)"
        )
    categories = None
    if needs_category:
        if prior.field not in data.labels:
            raise ConfigError(
                f"this model has a mixture prior over {prior.field!r}: the probe data needs that "
                f"sentence label (it has {', '.join(data.labels) or 'none'})"
            )
        categories = data.labels[prior.field]
    corpus = AnnotatedCorpus(data.texts, data.roles if ann is not None and ann.enabled else None,
                             categories)  # fmt: skip
    return (LabelledProbeModel(vae, data) if needs_labels else vae), corpus


def _choose(probes: Sequence[str] | str | None, have_sts: bool) -> list[str]:
    if probes is None or probes == "all" or list(probes) == ["all"]:
        return [p for p in PROBES if p != "sts" or have_sts]
    chosen = [probes] if isinstance(probes, str) else list(probes)
    for p in chosen:
        if p not in PROBES:
            raise ConfigError(f"unknown probe {p!r}: use all or any of {', '.join(PROBES)}")
    if "sts" in chosen and not have_sts:
        raise ConfigError("the sts probe needs a file of sentence pairs (s1, s2, score)")
    return chosen


def _sentence_labels(data: ProbeData, max_classes: int = 50) -> dict[str, list[str]]:
    """Per-sentence labels usable as categories: 2..max_classes distinct values."""
    return {k: v for k, v in data.labels.items() if 2 <= len(set(v)) <= max_classes}


def _pairs(data: ProbeData, n: int, rng: random.Random, key: str | None) -> list[tuple[str, str]]:
    """n sentence pairs, from different categories of ``key`` when there is one."""
    idx = list(range(len(data)))
    pairs = []
    for _ in range(50 * n):
        if len(pairs) == n:
            break
        i, j = rng.sample(idx, 2)
        if key is None or data.labels[key][i] != data.labels[key][j]:
            pairs.append((data.texts[i], data.texts[j]))
    return pairs


def run_probes(
    vae: Any,
    data: ProbeData,
    probes: Sequence[str] | str | None = None,
    *,
    max_sentences: int = 2000,
    map_sentences: int = 1000,
    decode_sentences: int = 300,
    methods: Sequence[str] = METHODS,
    color_by: str | None = None,
    sts: Any = None,
    vectors: Any = None,
    history: list[dict[str, Any]] | None = None,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the chosen ``probes`` (default all; ``sts`` only with a pairs file) on ``vae``.

    ``data``: probe sentences with optional role labels and sentence labels (see
    :func:`lmvae.probes.records.load_probe_data`); at most ``max_sentences`` of them, a seeded
    sample, are used, and ``map_sentences`` of those for the cluster maps. ``color_by`` picks the
    sentence label that colours the maps (default: the first categorical label, else length).
    Returns JSON-ready results, keyed by probe, with ``meta`` and per-probe ``timings``.
    """
    from .. import __version__
    from ..evaluation import evaluate

    chosen = _choose(probes, sts is not None)
    if isinstance(sts, str | Path):
        sts = read_sts_pairs(sts)  # fail on a bad pairs file before any probe runs
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown projection {m!r}: use any of {', '.join(METHODS)}")
    say = log or (lambda _line: None)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    if len(data) < 10:
        raise ConfigError(f"probing needs at least 10 sentences, got {len(data)}")
    if len(data) > max_sentences:
        data = data.subset(sorted(rng.sample(range(len(data)), max_sentences)))
    labels = _sentence_labels(data)
    if color_by is not None and color_by not in labels and color_by != "length":
        raise ConfigError(
            f"cannot colour by {color_by!r}: the data has "
            f"{', '.join(labels) or 'no categorical sentence labels'} (or use length)"
        )
    key = color_by if color_by in labels else next(iter(labels), None)
    results: dict[str, Any] = {
        "meta": {
            **(meta or {}),
            "n_sentences": len(data),
            "latent_size": int(vae.latent_size),
            "seed": seed,
            "probes": chosen,
            "lmvae_version": __version__,
        },
        "timings": {},
    }

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        say(f"probe: {name} ...")
        start = time.perf_counter()
        value = fn()
        results["timings"][name] = round(time.perf_counter() - start, 2)
        return value

    model, eval_data = vae, data.texts
    vae, eval_data = _for_probing(model, data)
    mu, logvar = timed("posterior", lambda: vae.posterior(data.texts))
    usage = latent_usage(mu, logvar, seed=seed)
    results["latent_usage"] = usage
    codes = mu.detach().cpu().double().numpy()
    if history:
        results["training"] = history

    if "reconstruction" in chosen:
        results["reconstruction"] = timed(
            "reconstruction",
            lambda: evaluate(model, eval_data, decode_sentences=decode_sentences),
        )
    if "traversal" in chosen:
        dims = [int(d) for d in np.argsort(usage["kl_per_dim"])[::-1][:4]]
        seeds = rng.sample(data.texts, 2)
        results["traversal"] = timed(
            "traversal",
            lambda: {
                "span": "prior",
                "quantiles": [0.05, 0.95],
                "dims": dims,
                "rows": traverse(vae, seeds, dims=dims, steps=7, span="prior"),
            },
        )
    if "interpolation" in chosen:
        pairs = _pairs(data, 3, rng, key)
        results["interpolation"] = timed(
            "interpolation",
            lambda: [interpolate(vae, a, b, steps=6, vectors=vectors) for a, b in pairs],
        )
    if "arithmetic" in chosen:
        pairs = _pairs(data, 3, rng, key)
        results["arithmetic"] = timed(
            "arithmetic",
            lambda: latent_arithmetic(
                vae, [a for a, _ in pairs], [b for _, b in pairs], ["sum", "sub", "avg"]
            ),
        )
    if "disentanglement" in chosen:
        factors: dict[str, list[str]] = {}
        if data.roles is not None:
            factors.update(role_factors(data.roles, data.texts))
        for name, values in labels.items():
            factors[name] = cap_values(values, min_count=5, max_values=20)
        factors = {k: v for k, v in factors.items() if len(set(v)) >= 2}
        if len(factors) >= 2:
            results["disentanglement"] = timed(
                "disentanglement", lambda: disentanglement(codes, factors, seed=seed)
            )
        else:
            say("probe: disentanglement skipped (needs >= 2 factors: role or sentence labels)")
    if "clusters" in chosen:
        n_map = min(map_sentences, len(data))
        sub = sorted(rng.sample(range(len(data)), n_map))
        lengths = sentence_properties(data.texts)["length"]
        color_key = key if color_by != "length" and key is not None else "length"
        colour = labels[color_key] if color_key != "length" else lengths

        def clusters() -> dict[str, Any]:
            scores = {
                name: cluster_scores(codes, values, seed=seed)
                for name, values in {**labels, "length": lengths}.items()
            }
            coords = {}
            for m in methods:
                start = time.perf_counter()
                coords[m] = project(codes[sub], m, seed).round(4).tolist()
                results["timings"][f"clusters_{m}"] = round(time.perf_counter() - start, 2)
            return {
                "color_by": color_key,
                "texts": [data.texts[i] for i in sub],
                "labels": [colour[i] for i in sub],
                "coords": coords,
                "scores": scores,
            }

        results["clusters"] = timed("clusters", clusters)
    if "properties" in chosen:
        props = sentence_properties(data.texts, data.roles, labels)
        results["properties"] = timed(
            "properties", lambda: probe_properties(codes, props, seed=seed)
        )
    if "sts" in chosen:
        results["sts"] = timed("sts", lambda: sts_probe(vae, sts))
    return results


# ------------------------------------------------------------------------------------------
# Writing.


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _figures(results: dict[str, Any]) -> dict[str, bytes]:
    from . import plots

    figs: dict[str, bytes] = {}
    usage = results.get("latent_usage")
    if usage:
        kl = {f"z{i}": v for i, v in enumerate(usage["kl_per_dim"])}
        figs["kl_per_dim"] = plots.bar_chart(kl, "KL per latent dimension", "nats")
    history = results.get("training")
    if history:
        keys = ("train_loss", "eval_recon_nll", "eval_kl", "eval_bleu", "eval_exact_match", "beta")
        series = {k: [h.get(k) for h in history] for k in keys if any(k in h for h in history)}
        figs["training"] = plots.line_chart(
            [h.get("epoch") for h in history], series, "training history", "epoch"
        )
    if results.get("disentanglement"):
        figs["disentanglement"] = plots.bar_chart(
            results["disentanglement"]["scores"], "disentanglement", "score", ylim=(0, 1)
        )
    if results.get("properties"):
        ok = {k: v for k, v in results["properties"].items() if "accuracy" in v}
        if ok:
            figs["properties"] = plots.bar_chart(
                {k: v["accuracy"] for k, v in ok.items()},
                "linguistic properties: CV accuracy of a linear probe on z",
                "accuracy",
                baseline={k: v["majority_baseline"] for k, v in ok.items()},
                ylim=(0, 1),
            )
    return figs


def write_report(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Draw the figures and write ``report.html``, ``report.json`` and the cluster maps into
    ``out_dir`` (created if needed); returns the path of ``report.html``."""
    from . import html, plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(results)
    clusters = results.get("clusters")
    if clusters:
        for method, coords in clusters["coords"].items():
            title = f"{method} of z, coloured by {clusters['color_by']}"
            xy = np.asarray(coords)
            _write(out / f"clusters_{method}.png", plots.scatter_map(xy, clusters["labels"], title))
            page = html.map_page(xy, clusters["labels"], clusters["texts"], title)
            _write(out / f"clusters_{method}.html", page.encode("utf-8"))
    text = json.dumps(_finite(results), indent=1, ensure_ascii=False, allow_nan=False)
    _write(out / "report.json", text.encode("utf-8"))
    report = out / "report.html"
    _write(report, html.render_report(results, figures).encode("utf-8"))
    return report


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary sibling and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
