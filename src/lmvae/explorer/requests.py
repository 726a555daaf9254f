"""Request checking: every body the explorer accepts, read into the arguments of one
:class:`~lmvae.explorer.session.Explorer` method, or refused with a status and a message.

Bodies are JSON objects; unknown fields, wrong types, values out of range and too much work
(too many sentences, samples or steps; too long a text) are refused before any model runs.
A sentence is given as its text, as ``{"text": ..., "labels": [...]}`` (one label per word,
for a model that reads them) or as ``{"id": n}``, a corpus sentence (as the map names them).
User text is only ever tokenised; nothing in a request is evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..probes.clusters import METHODS
from ..probes.interpolation import MODES
from .session import STRATEGIES, Explorer, Sentence

__all__ = ["PARSERS", "BadRequest", "Limits", "parse_body"]


class BadRequest(Exception):
    """A request refused with an HTTP status and a message saying what to change."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """How much one request may ask for: the server's answer time stays bounded."""

    max_body: int = 32_768  # bytes
    max_chars: int = 300  # per sentence
    max_sentences: int = 8  # per reconstruct / place request
    max_samples: int = 8  # posterior samples per sentence
    max_steps: int = 16  # interpolation steps
    max_prior: int = 16  # prior samples per request
    max_neighbours: int = 20
    max_value: float = 10.0  # |traversal value|, in prior standard deviations
    max_label_chars: int = 64


def parse_body(body: bytes, limits: Limits) -> dict[str, Any]:
    """The JSON object of a request body."""
    if len(body) > limits.max_body:
        raise BadRequest(413, f"request body over {limits.max_body} bytes")
    try:
        value = json.loads(body.decode("utf-8") if body else "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f"bad JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    return value


class Fields:
    """The fields of one request body, each read and checked once; unknown fields are refused
    (a misspelt option is an error, not a silently ignored default)."""

    def __init__(self, body: dict[str, Any], allowed: tuple[str, ...], limits: Limits):
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise BadRequest(422, f"unknown field {unknown[0]!r}: use {', '.join(allowed)}")
        self.body, self.limits = body, limits

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int:
        value = self.body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(422, f"{name} must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise BadRequest(422, f"{name} must be in [{lo}, {hi}], got {value}")
        return value

    def number(self, name: str, lo: float, hi: float) -> float | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(422, f"{name} must be a number, got {value!r}")
        if not lo <= value <= hi:  # also refuses NaN
            raise BadRequest(422, f"{name} must be in [{lo}, {hi}], got {value}")
        return float(value)

    def choice(self, name: str, options: tuple[str, ...], default: str | None) -> str:
        value = self.body.get(name, default)
        if value not in options:
            raise BadRequest(422, f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise BadRequest(422, f"{name} must be a short string, got {value!r}")
        return value

    def decoding(self) -> dict[str, Any]:
        """The decoding strategy and seed every decoding request takes."""
        return {
            "strategy": self.choice("strategy", STRATEGIES, "greedy"),
            "seed": self.integer("seed", 0, 0, 2**31 - 1),
        }

    def sentence(self, name: str, explorer: Explorer) -> Sentence:
        if name not in self.body:
            raise BadRequest(422, f"missing field {name!r}: a sentence")
        return self._sentence(self.body[name], name, explorer)

    def sentences(self, name: str, explorer: Explorer) -> list[Sentence]:
        items = self.body.get(name)
        if not isinstance(items, list) or not items:
            raise BadRequest(422, f"{name} must be a non-empty list of sentences")
        if len(items) > self.limits.max_sentences:
            raise BadRequest(
                422, f"at most {self.limits.max_sentences} sentences a request, got {len(items)}"
            )
        return [self._sentence(x, f"{name}[{i}]", explorer) for i, x in enumerate(items)]

    def _sentence(self, value: Any, where: str, explorer: Explorer) -> Sentence:
        if isinstance(value, dict) and set(value) == {"id"}:
            i = value["id"]
            if isinstance(i, bool) or not isinstance(i, int):
                raise BadRequest(422, f"{where}: a sentence id must be an integer, got {i!r}")
            try:
                return explorer.corpus_sentence(i)
            except KeyError as e:
                raise BadRequest(404, f"{where}: {e.args[0]}") from None
        labels = None
        if isinstance(value, dict):
            extra = set(value) - {"text", "labels"}
            if extra or "text" not in value:
                raise BadRequest(422, f"{where}: give a text, {{text, labels}} or {{id}}")
            value, labels = value["text"], self._labels(value.get("labels"), where)
        if not isinstance(value, str):
            raise BadRequest(422, f"{where}: a sentence must be a string, got {value!r}")
        text = " ".join(value.split())
        if not text:
            raise BadRequest(422, f"{where}: the sentence is empty")
        if len(text) > self.limits.max_chars:
            raise BadRequest(422, f"{where}: sentences are limited to {self.limits.max_chars} "
                             f"characters, got {len(text)}")  # fmt: skip
        if labels is not None and len(labels) != len(text.split()):
            raise BadRequest(422, f"{where}: {len(labels)} labels for {len(text.split())} words; "
                             "give one label per whitespace-separated word")  # fmt: skip
        return Sentence(text, labels)

    def _labels(self, value: Any, where: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = value.split()
        ok = isinstance(value, list) and all(
            isinstance(v, str) and 0 < len(v) <= self.limits.max_label_chars for v in value
        )
        if not ok or len(value) > self.limits.max_chars:
            raise BadRequest(422, f"{where}: labels must be a list of short strings (one a word)")
        return tuple(value)


def _dim(fields: Fields, explorer: Explorer) -> int:
    size = int(explorer.vae.latent_size)
    value = fields.body.get("dim")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise BadRequest(
            404, f"unknown dimension {value!r}: the latent has dimensions 0..{size - 1}"
        )
    return value


def _method(fields: Fields, explorer: Explorer) -> str:
    if explorer.corpus is None:
        raise BadRequest(409, "no corpus to map: start the explorer with --data")
    return fields.choice("method", METHODS, "pca")


def _reconstruct(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("sentences", "samples", "strategy", "seed"), limits)
    return {"sentences": f.sentences("sentences", explorer),
            "samples": f.integer("samples", 4, 0, limits.max_samples), **f.decoding()}  # fmt: skip


def _interpolate(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("a", "b", "steps", "mode", "strategy", "seed"), limits)
    return {"a": f.sentence("a", explorer), "b": f.sentence("b", explorer),
            "steps": f.integer("steps", 6, 2, limits.max_steps),
            "mode": f.choice("mode", MODES, "linear"), **f.decoding()}  # fmt: skip


def _traverse(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("sentence", "dim", "value", "strategy", "seed"), limits)
    value = f.number("value", -limits.max_value, limits.max_value)
    return {"sentence": f.sentence("sentence", explorer), "dim": _dim(f, explorer),
            "value": value, **f.decoding()}  # fmt: skip


def _arithmetic(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("a", "b", "c", "k", "strategy", "seed"), limits)
    return {"a": f.sentence("a", explorer), "b": f.sentence("b", explorer),
            "c": f.sentence("c", explorer), "k": f.integer("k", 5, 0, limits.max_neighbours),
            **f.decoding()}  # fmt: skip


def _prior(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("n", "category", "strategy", "seed"), limits)
    category = f.optional_text("category")
    if category is not None and category not in explorer.needs["categories"]:
        known = ", ".join(explorer.needs["categories"]) or "none: the prior is a single Gaussian"
        raise BadRequest(404, f"unknown category {category!r} (categories: {known})")
    return {"n": f.integer("n", 6, 1, limits.max_prior), "category": category, **f.decoding()}


def _map(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("method", "colour_by"), limits)
    method = _method(f, explorer)
    colour_by = f.optional_text("colour_by") or next(iter(explorer.colour_labels))
    if colour_by not in explorer.colour_labels:
        raise BadRequest(404, f"cannot colour by {colour_by!r}: use one of "
                         f"{', '.join(explorer.colour_labels)}")  # fmt: skip
    return {"method": method, "colour_by": colour_by}


def _place(body: dict, explorer: Explorer, limits: Limits) -> dict[str, Any]:
    f = Fields(body, ("sentences", "method"), limits)
    return {"method": _method(f, explorer), "sentences": f.sentences("sentences", explorer)}


#: Endpoint name -> reader of its body into the keyword arguments of the Explorer method.
PARSERS: dict[str, Callable[[dict, Explorer, Limits], dict[str, Any]]] = {
    "reconstruct": _reconstruct,
    "interpolate": _interpolate,
    "traverse": _traverse,
    "arithmetic": _arithmetic,
    "prior": _prior,
    "map": _map,
    "place": _place,
}
