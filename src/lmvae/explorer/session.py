"""The explorer's state and operations: one model, an optional corpus, and the probes.

:class:`Explorer` knows nothing of HTTP: each method takes checked Python values (see
:mod:`lmvae.explorer.requests`) and returns a JSON-ready dict. Every latent-space operation is
a probe's public function; this module only chooses what to call, looks up corpus sentences
and their labels, and caches what is slow to redo (the corpus posterior, fitted maps).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..probes import (
    LabelledProbeModel,
    ProbeData,
    analogy,
    fit_projection,
    interpolate,
    latent_usage,
    model_needs,
    nearest,
    posterior_samples,
    sentence_properties,
    traverse,
)
from ..probes.clusters import METHODS, Projection
from ..probes.plots import category_colors

__all__ = ["STRATEGIES", "Explorer", "Sentence"]

STRATEGIES = ("greedy", "beam", "sample")
#: Labels with more values than this do not colour a map (a legend nobody can read).
MAX_CLASSES = 50


@dataclass(frozen=True)
class Sentence:
    """A sentence of a request: its text, its word labels if known, its corpus id if any."""

    text: str
    labels: tuple[str, ...] | None = None
    id: int | None = None


class Explorer:
    """A trained model and an optional corpus, seen through the probes.

    The corpus (at most ``max_corpus`` sentences, a seeded sample) is encoded once, here: its
    posterior means are the map's points, the arithmetic's neighbours and, through their KL,
    the ranking of the dimensions a traversal offers. ``max_new_tokens`` caps every decoding.
    """

    def __init__(
        self,
        vae: Any,
        corpus: ProbeData | None = None,
        max_corpus: int = 2000,
        seed: int = 0,
        name: str = "",
        max_new_tokens: int | None = None,
    ):
        self.vae = vae
        self.name = name
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.needs = model_needs(vae)
        if corpus is not None and len(corpus) > max_corpus:
            keep = sorted(random.Random(seed).sample(range(len(corpus)), max_corpus))
            corpus = corpus.subset(keep)
        if corpus is not None and len(corpus) < 3:
            raise ConfigError(f"a corpus to explore needs at least 3 sentences, got {len(corpus)}")
        if corpus is not None and self.needs["word_labels"] and corpus.roles is None:
            raise ConfigError(
                "this model reads per-word labels: give a corpus that has them (JSONL with a "
                "per-word labels field, or demo)"
            )
        self.corpus = corpus
        self.codes: np.ndarray | None = None
        self.kl_per_dim: list[float] | None = None
        self.colour_labels: dict[str, list[str]] = {}
        self._maps: dict[str, Projection] = {}
        self._index: dict[str, int] = {}
        if corpus is not None:
            self._index = {t: i for i, t in enumerate(corpus.texts)}
            model, texts = self._view([self.corpus_sentence(i) for i in range(len(corpus))])
            mu, logvar = model.posterior(texts)
            self.codes = mu.detach().cpu().double().numpy()
            self.kl_per_dim = latent_usage(mu, logvar, seed=seed)["kl_per_dim"]
            props = sentence_properties(corpus.texts, corpus.roles, corpus.labels)
            # The corpus's own sentence labels first: the map is coloured by the first.
            order = [*corpus.labels, *(k for k in props if k not in corpus.labels)]
            self.colour_labels = {
                k: props[k]
                for k in order
                if 2 <= len(set(props[k])) <= MAX_CLASSES or k == "length"
            }

    # -- sentences and the model each request sees ---------------------------------------------
    @property
    def corpus_size(self) -> int:
        return 0 if self.corpus is None else len(self.corpus)

    def corpus_sentence(self, i: int) -> Sentence:
        """The corpus sentence with id ``i``, with its word labels; KeyError when unknown."""
        if self.corpus is None or not 0 <= i < len(self.corpus):
            raise KeyError(
                f"unknown sentence id {i}: "
                + (f"the corpus ids are 0..{self.corpus_size - 1}" if self.corpus else "no corpus")
            )
        roles = None if self.corpus.roles is None else tuple(self.corpus.roles[i])
        return Sentence(self.corpus.texts[i], roles, i)

    def resolve(self, sentence: Sentence) -> Sentence:
        """A typed sentence that is in the corpus takes the corpus's labels and id."""
        i = self._index.get(sentence.text)
        if sentence.labels is None and i is not None:
            return self.corpus_sentence(i)
        return sentence

    def _view(self, sentences: list[Sentence]) -> tuple[Any, list[str]]:
        """The model as the probes should see it (with each sentence's word labels when the
        encoder reads them) and the texts."""
        texts = [s.text for s in sentences]
        if not self.needs["word_labels"]:
            return self.vae, texts
        missing = [s.text for s in sentences if s.labels is None]
        if missing:
            raise ConfigError(
                f"this model reads one word label per word ({', '.join(self.needs['labels'])}); "
                f"give labels for {missing[0]!r} or pick a corpus sentence on the map"
            )
        data = ProbeData(texts, [list(s.labels or ()) for s in sentences])
        return LabelledProbeModel(self.vae, data), texts

    def generation(self, strategy: str, seed: int) -> dict[str, Any]:
        """``vae.decode`` options of a decoding strategy; sampling is seeded."""
        options: dict[str, Any] = {"strategy": strategy}
        if self.max_new_tokens is not None:
            options["max_new_tokens"] = self.max_new_tokens
        if strategy == "beam":
            options["num_beams"] = 4
        if strategy == "sample":
            device = getattr(self.vae, "device", "cpu")
            options["top_p"] = 0.9
            options["generator"] = torch.Generator(device=device).manual_seed(seed)
        return options

    # -- operations ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the page needs to draw its controls, and what the model needs to be given."""
        size = int(self.vae.latent_size)
        kl = self.kl_per_dim
        order = list(range(size)) if kl is None else [int(d) for d in np.argsort(kl)[::-1]]
        return {
            "model": self.name,
            "latent_size": size,
            "corpus_size": self.corpus_size,
            "needs": self.needs,
            "dims": [{"dim": d, "kl": None if kl is None else round(kl[d], 4)} for d in order],
            "maps": list(METHODS) if self.corpus is not None else [],
            "colour_by": list(self.colour_labels),
            "strategies": list(STRATEGIES),
        }

    def reconstruct(
        self, sentences: list[Sentence], samples: int, strategy: str, seed: int
    ) -> dict[str, Any]:
        """Reconstructions and decoded posterior samples, with the posterior's spread."""
        sentences = [self.resolve(s) for s in sentences]
        model, texts = self._view(sentences)
        rows = posterior_samples(model, texts, samples, seed, **self.generation(strategy, seed))
        for row, s in zip(rows, sentences, strict=True):
            row["id"] = s.id
        return {"rows": rows}

    def interpolate(
        self, a: Sentence, b: Sentence, steps: int, mode: str, strategy: str, seed: int
    ) -> dict[str, Any]:
        """The decoded path from ``a`` to ``b`` and its smoothness."""
        model, (ta, tb) = self._view([self.resolve(a), self.resolve(b)])
        out = interpolate(model, ta, tb, steps, mode, **self.generation(strategy, seed))
        out["smoothness"] = _finite(out["smoothness"])
        out["distances"] = [_finite(d) for d in out["distances"]]
        out["endpoint_distance"] = _finite(out["endpoint_distance"])
        out["path_length"] = _finite(out["path_length"])
        return out

    def traverse(
        self, sentence: Sentence, dim: int, value: float | None, strategy: str, seed: int
    ) -> dict[str, Any]:
        """The sentence decoded with dimension ``dim`` set to ``value`` (default: its own
        posterior mean), and that dimension's posterior mean and spread."""
        model, texts = self._view([self.resolve(sentence)])
        mu, logvar = model.posterior(texts)
        mu_d, sigma_d = float(mu[0, dim]), float((0.5 * logvar[0, dim]).exp())
        at = mu_d if value is None else value
        row = traverse(model, texts, dims=[dim], values=[at], **self.generation(strategy, seed))[0]
        return {"text": texts[0], "dim": dim, "value": at, "decoded": row["text"],
                "mu": mu_d, "sigma": sigma_d}  # fmt: skip

    def arithmetic(
        self, a: Sentence, b: Sentence, c: Sentence, k: int, strategy: str, seed: int
    ) -> dict[str, Any]:
        """``a - b + c`` decoded, and the corpus sentences nearest that latent."""
        model, (ta, tb, tc) = self._view([self.resolve(s) for s in (a, b, c)])
        out = analogy(model, ta, tb, tc, **self.generation(strategy, seed))
        out["neighbours"] = []
        if self.codes is not None and self.corpus is not None and k > 0:
            index, dist = nearest(self.codes, np.asarray([out["z"]]), k)
            out["neighbours"] = [
                {"id": int(i), "text": self.corpus.texts[int(i)], "distance": float(d)}
                for i, d in zip(index[0], dist[0], strict=True)
            ]
        return out

    def prior(self, n: int, category: str | None, strategy: str, seed: int) -> dict[str, Any]:
        """``n`` sentences decoded from the prior, or from one category's component."""
        if category is not None and category not in self.needs["categories"]:
            known = ", ".join(self.needs["categories"]) or "none: the prior is a single Gaussian"
            raise KeyError(f"unknown category {category!r} (categories: {known})")
        options = self.generation(strategy, seed)
        options.pop("generator", None)  # sample_prior seeds its own sampling from `seed`
        texts = self.vae.sample_prior(n, seed=seed, category=category, **options)
        return {"category": category, "seed": seed, "texts": texts}

    def projection(self, method: str) -> Projection:
        """The corpus map by ``method``, fitted on first use (UMAP takes seconds)."""
        if self.codes is None:
            raise ConfigError("no corpus to map: start the explorer with --data")
        if method not in self._maps:
            self._maps[method] = fit_projection(self.codes, method, self.seed)
        return self._maps[method]

    def map(self, method: str, colour_by: str) -> dict[str, Any]:
        """The corpus points of a map, coloured by a sentence label."""
        if colour_by not in self.colour_labels:
            raise KeyError(
                f"cannot colour by {colour_by!r}: use one of {', '.join(self.colour_labels)}"
            )
        assert self.corpus is not None
        coords = self.projection(method).coords
        labels = self.colour_labels[colour_by]
        return {
            "method": method,
            "colour_by": colour_by,
            "coords": np.round(coords, 4).tolist(),
            "labels": labels,
            "colours": category_colors(labels),
            "texts": self.corpus.texts,
        }

    def place(self, sentences: list[Sentence], method: str) -> dict[str, Any]:
        """Where sentences fall on the corpus map by ``method``."""
        projection = self.projection(method)
        model, texts = self._view([self.resolve(s) for s in sentences])
        mu, _ = model.posterior(texts)
        coords = projection.place(mu.detach().cpu().double().numpy())
        return {"method": method, "texts": texts, "coords": np.round(coords, 4).tolist()}


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity."""
    return value if math.isfinite(value) else None
