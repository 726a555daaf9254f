"""Encoder-decoder compatibility: layer-wise linear CKA between what the encoder pools and what
the decoder itself computes for the same sentences.

Centered kernel alignment (Kornblith et al., 2019, "Similarity of Neural Network
Representations Revisited") compares two representations of the same N examples through their
N x N Gram matrices, so layers of different widths compare, and it is invariant to rotations and
isotropic scaling.  The plain estimator is biased upwards when the width is large next to N; the
debiased one uses the unbiased HSIC estimator (Song et al., 2012; Nguyen et al., 2021), which is
near 0 for independent representations.  A pair of frozen LMs whose layers align well should
need less of the trainable bridge between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..encoder import pool
from ..errors import ConfigError

__all__ = ["encoder_decoder_cka", "layerwise_cka", "linear_cka"]


def _centered_gram(x: np.ndarray, debiased: bool) -> np.ndarray:
    """The linear Gram matrix (N, N) of x (N, D), centered (unbiasedly when ``debiased``)."""
    x = np.asarray(x, dtype=np.float64)
    gram = x @ x.T
    n = gram.shape[0]
    if not debiased:
        gram -= gram.mean(0, keepdims=True)
        gram -= gram.mean(1, keepdims=True)
        return gram
    np.fill_diagonal(gram, 0.0)
    means = gram.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    gram -= means[:, None]
    gram -= means[None, :]
    np.fill_diagonal(gram, 0.0)
    return gram


def _cka_of_grams(a: np.ndarray, b: np.ndarray) -> float:
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else 0.0


def _check(n: int, debiased: bool) -> None:
    if n < (4 if debiased else 2):
        raise ConfigError(f"CKA needs at least {4 if debiased else 2} examples, got {n}")


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = True) -> float:
    """Linear CKA of two representations (N, D1) and (N, D2) of the same N examples: 1 for
    representations equal up to rotation and scale, near 0 (debiased) for independent ones."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"CKA compares the same examples: {x.shape[0]} rows vs {y.shape[0]}")
    _check(x.shape[0], debiased)
    return _cka_of_grams(_centered_gram(x, debiased), _centered_gram(y, debiased))


def layerwise_cka(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], debiased: bool = True
) -> np.ndarray:
    """CKA (len(xs), len(ys)) of every layer of one representation with every layer of the
    other; each Gram matrix is built once."""
    n = {np.asarray(x).shape[0] for x in [*xs, *ys]}
    if len(n) != 1:
        raise ConfigError(f"CKA compares the same examples: row counts {sorted(n)}")
    _check(n.pop(), debiased)
    grams_y = [_centered_gram(y, debiased) for y in ys]
    out = np.zeros((len(xs), len(ys)))
    for i, x in enumerate(xs):
        gram_x = _centered_gram(x, debiased)
        for j, gram_y in enumerate(grams_y):
            out[i, j] = _cka_of_grams(gram_x, gram_y)
    return out


@torch.no_grad()
def _layer_states(model, texts: list[str], batch_size: int) -> tuple[list, list]:
    """Per layer, the encoder's pooled states and the decoder's mean-pooled states (N, H)."""
    how = model.config.encoder.pooling
    enc: list[list[torch.Tensor]] = []
    dec: list[list[torch.Tensor]] = []
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        inputs = model.encoder_inputs(chunk)
        states = model.encoder.backbone(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            output_hidden_states=True,
        ).hidden_states
        pooled = [pool(s.float(), inputs["attention_mask"], how).cpu() for s in states]
        batch = model.codec.collate(model.codec.decoder_rows(chunk))
        ids, mask = (batch[k].to(model.device) for k in ("input_ids", "attention_mask"))
        own = model.decoder.lm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        means = [pool(s.float(), mask, "mean").cpu() for s in own.hidden_states]
        for store, rows in ((enc, pooled), (dec, means)):
            if not store:
                store.extend([] for _ in rows)
            for layer, row in zip(store, rows, strict=True):
                layer.append(row)
    return (
        [torch.cat(rows).double().numpy() for rows in enc],
        [torch.cat(rows).double().numpy() for rows in dec],
    )


def encoder_decoder_cka(
    model, texts: Sequence[str], batch_size: int = 32, debiased: bool = True
) -> dict:
    """Debiased linear CKA between every encoder layer (pooled as the model pools) and every
    decoder layer (its own mean-pooled hidden states, no latent) over ``texts`` (use >= 1000
    sentences for a stable figure).  Returns ``{"matrix": [[...]] (encoder x decoder layers,
    embeddings first), "max", "mean", "best_pair": [i, j], "n"}``."""
    texts = list(texts)
    enc, dec = _layer_states(model, texts, batch_size)
    matrix = layerwise_cka(enc, dec, debiased)
    best = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return {
        "matrix": matrix.round(4).tolist(),
        "max": float(matrix.max()),
        "mean": float(matrix.mean()),
        "best_pair": [int(best[0]), int(best[1])],
        "n": len(texts),
    }
