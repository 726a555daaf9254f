"""Latent interpolation with a smoothness score: is the latent space a continuous map of text?

Decoding evenly spaced points between two sentences' latents shows whether the space is smooth
(each sentence a small edit of the previous one, drifting from start to end) or whether the
decoder jumps around (holes, or an ignored latent). :func:`smoothness` condenses this into one
number: the distance between the first and last decoded sentences divided by the length of the
path through all of them. It is 1.0 for a perfectly monotone path (every step moves towards the
end) and falls towards 0 when the path wanders back and forth.

Distances between sentences are Word Mover's Distances (Kusner et al., 2015): the minimal cost
of moving one sentence's words onto the other's in a word-vector space, solved exactly with POT
(``ot.emd2``). Word vectors come from a user-given word2vec text file
(:func:`load_word_vectors`) or, by default, from the model's own decoder token embeddings, so
nothing is downloaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import ConfigError, DataError

__all__ = [
    "MODES",
    "decoder_word_vectors",
    "interpolate",
    "load_word_vectors",
    "smoothness",
    "tokenize_words",
    "word_movers_distance",
]

MODES = ("linear", "slerp")
T = TypeVar("T")

_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize_words(text: str) -> list[str]:
    """Words and punctuation marks of ``text``, in order (``"It's ok."`` ->
    ``["It's", "ok", "."]``)."""
    return _WORD.findall(text)


def load_word_vectors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a word2vec *text* file: one ``word v1 v2 ...`` per line. An optional first line
    ``<count> <dim>`` (the word2vec header) is skipped; blank lines are ignored. The first
    occurrence of a repeated word wins."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"word vectors file not found: {path}")
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split()
            if not parts:
                continue
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: expected 'word v1 v2 ...'")
            try:
                vec = np.asarray([float(x) for x in parts[1:]], dtype=np.float64)
            except ValueError:
                raise DataError(f"{path}:{lineno}: vector entries must be numbers") from None
            if dim is None:
                dim = vec.size
            elif vec.size != dim:
                raise DataError(f"{path}:{lineno}: vector has {vec.size} entries, expected {dim}")
            vectors.setdefault(parts[0], vec)
    if not vectors:
        raise DataError(f"no word vectors in {path}")
    return vectors


def _lookup(word: str, vectors: Mapping[str, np.ndarray]) -> np.ndarray | None:
    vec = vectors.get(word)
    if vec is None:
        vec = vectors.get(word.lower())
    return vec


def word_movers_distance(
    words_a: Sequence[str], words_b: Sequence[str], vectors: Mapping[str, np.ndarray]
) -> float:
    """Word Mover's Distance between two word lists: each known word carries the same mass
    (so repeated words weigh more), moving mass costs the Euclidean distance between word
    vectors, and the result is the cost of the optimal transport plan (``ot.emd2``).

    Words missing from ``vectors`` (tried as given, then lower-cased) are skipped. If neither
    side has a known word the distance is 0.0 (two empty sentences are identical); if exactly
    one side has none it is ``inf``.
    """
    import ot

    if isinstance(words_a, str) or isinstance(words_b, str):
        raise ConfigError("word_movers_distance takes lists of words; use tokenize_words first")
    xa = [v for v in (_lookup(w, vectors) for w in words_a) if v is not None]
    xb = [v for v in (_lookup(w, vectors) for w in words_b) if v is not None]
    if not xa and not xb:
        return 0.0
    if not xa or not xb:
        return math.inf
    a = np.asarray(xa, dtype=np.float64)
    b = np.asarray(xb, dtype=np.float64)
    cost = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
    wa = np.full(len(a), 1.0 / len(a))
    wb = np.full(len(b), 1.0 / len(b))
    return max(float(ot.emd2(wa, wb, cost)), 0.0)


def smoothness(texts: Sequence[T], distance_fn: Callable[[T, T], float]) -> float:
    """``distance(first, last) / sum of distance(consecutive pairs)``, in [0, 1] for a metric.

    1.0 means a perfectly monotone path; it is also 1.0 when every consecutive distance is 0
    (nothing changes). ``nan`` when some distance is infinite (e.g. a sentence with no known
    words under :func:`word_movers_distance`).
    """
    items = list(texts)
    if len(items) < 2:
        raise ConfigError(f"smoothness needs at least 2 items, got {len(items)}")
    steps = [float(distance_fn(x, y)) for x, y in zip(items, items[1:], strict=False)]
    total = sum(steps)
    end = float(distance_fn(items[0], items[-1]))
    if not (math.isfinite(total) and math.isfinite(end)):
        return math.nan
    if total == 0.0:
        return 1.0
    return end / total


def decoder_word_vectors(vae: Any, words: Sequence[str]) -> dict[str, np.ndarray]:
    """Vectors of ``words`` from the model's decoder input embeddings: each word is tokenised
    on its own (no special tokens, no leading space) with ``vae.decoder_tokenizer`` and its
    sub-word embeddings are averaged. Words that tokenise to nothing are left out."""
    weight = vae.decoder.lm.get_input_embeddings().weight.detach().float().cpu().numpy()
    tokenizer = vae.decoder_tokenizer
    out: dict[str, np.ndarray] = {}
    for word in dict.fromkeys(words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        ids = [i for i in ids if 0 <= i < weight.shape[0]]
        if ids:
            out[word] = weight[ids].astype(np.float64).mean(0)
    return out


def interpolate(
    vae: Any,
    start: str,
    end: str,
    steps: int = 5,
    mode: str = "linear",
    vectors: Mapping[str, np.ndarray] | str | Path | None = None,
    **generation: Any,
) -> dict[str, Any]:
    """Decode ``steps`` points from the posterior mean of ``start`` to that of ``end``
    (inclusive; straight line or ``mode="slerp"``) and score the path's smoothness.

    ``vectors``: word vectors for the Word Mover's Distance — a mapping, a word2vec text file,
    or None for the decoder's own token embeddings. ``generation`` goes to ``vae.decode``.

    Returns ``{"start", "end", "mode", "steps", "texts", "distances" (consecutive WMDs),
    "endpoint_distance", "path_length", "smoothness"}``.
    """
    from ..inference import interpolate_latents

    if mode not in MODES:
        raise ConfigError(f"unknown interpolation mode {mode!r}: use one of {', '.join(MODES)}")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 2:
        raise ConfigError(f"interpolation needs an integer steps >= 2, got {steps!r}")
    if not isinstance(start, str) or not isinstance(end, str):
        raise ConfigError("start and end must be sentences (strings)")

    za, zb = vae.encode([start, end])
    texts = vae.decode(interpolate_latents(za, zb, int(steps), mode), **generation)
    words = [tokenize_words(t) for t in texts]
    if vectors is None:
        table: Mapping[str, np.ndarray] = decoder_word_vectors(vae, [w for ws in words for w in ws])
    elif isinstance(vectors, str | Path):
        table = load_word_vectors(vectors)
    else:
        table = vectors

    cache: dict[tuple[int, int], float] = {}

    def dist(i: int, j: int) -> float:
        if (i, j) not in cache:
            cache[(i, j)] = word_movers_distance(words[i], words[j], table)
        return cache[(i, j)]

    index = list(range(len(texts)))
    score = smoothness(index, dist)
    distances = [dist(i, i + 1) for i in index[:-1]]
    return {
        "start": start,
        "end": end,
        "mode": mode,
        "steps": int(steps),
        "texts": texts,
        "distances": distances,
        "endpoint_distance": dist(0, len(texts) - 1),
        "path_length": float(sum(distances)),
        "smoothness": score,
    }
