"""Latent arithmetic: do sentence latents compose?

In a well-structured latent space, vector operations on sentence codes should mean something:
the average of two sentences' latents decodes to a blend of both, the sum strengthens what they
share, the difference keeps what ``a`` has and ``b`` lacks (the "analogy" probe of word2vec,
applied to sentences). This module decodes ``z_a + z_b``, ``z_a - z_b`` and ``(z_a + z_b) / 2``
of posterior means, so a reader can judge whether such operations give fluent, related text,
and :func:`analogy` decodes ``z_a - z_b + z_c`` ("a is to b as what is to c").

Only the public model API is used (``vae.encode``, ``vae.decode``); all pairs and operations are
decoded in one batched ``vae.decode`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["OPS", "analogy", "combine", "latent_arithmetic"]

OPS = ("sum", "sub", "avg")


def combine(za: torch.Tensor, zb: torch.Tensor, op: str) -> torch.Tensor:
    """``za + zb`` (``"sum"``), ``za - zb`` (``"sub"``) or ``(za + zb) / 2`` (``"avg"``);
    ``za`` and ``zb`` must have the same shape."""
    if op not in OPS:
        raise ConfigError(f"unknown latent operation {op!r}: use one of {', '.join(OPS)}")
    za, zb = torch.as_tensor(za), torch.as_tensor(zb)
    if za.shape != zb.shape:
        raise ConfigError(
            f"latents must have the same shape, got {tuple(za.shape)} and {tuple(zb.shape)}"
        )
    if op == "sum":
        return za + zb
    if op == "sub":
        return za - zb
    return (za + zb) / 2


def _texts(x: Sequence[str] | str, name: str) -> list[str]:
    items = [x] if isinstance(x, str) else list(x)
    if not items or not all(isinstance(t, str) for t in items):
        raise ConfigError(f"{name} must be a sentence or a non-empty list of sentences")
    return items


def latent_arithmetic(
    vae: Any,
    a: Sequence[str] | str,
    b: Sequence[str] | str,
    op: str | Sequence[str] = "sum",
    **generation: Any,
) -> dict[str, Any]:
    """Decode ``combine(z_a, z_b, op)`` of posterior means for each pair ``(a[i], b[i])``.

    ``a`` and ``b``: one sentence each, or equally long lists (pairs). ``op``: one of
    ``"sum"``, ``"sub"``, ``"avg"`` or a list of them (every op is applied to every pair).
    ``generation`` goes to ``vae.decode``.

    Returns ``{"ops": [...], "rows": [{"a", "b", "op", "text"}, ...], "texts": [...]}`` with
    rows ordered by pair, then op; ``texts`` lists the decoded texts in the same order.
    """
    ops = [op] if isinstance(op, str) else list(op)
    if not ops:
        raise ConfigError("op is empty: give at least one of sum, sub, avg")
    for o in ops:
        if o not in OPS:
            raise ConfigError(f"unknown latent operation {o!r}: use one of {', '.join(OPS)}")
    left, right = _texts(a, "a"), _texts(b, "b")
    if len(left) != len(right):
        raise ConfigError(f"a and b must pair up: got {len(left)} and {len(right)} sentences")

    z = vae.encode(left + right)
    za, zb = z[: len(left)], z[len(left) :]
    latents, rows = [], []
    for i, (sa, sb) in enumerate(zip(left, right, strict=True)):
        for o in ops:
            latents.append(combine(za[i], zb[i], o))
            rows.append({"a": sa, "b": sb, "op": o})
    texts = vae.decode(torch.stack(latents), **generation)
    for row, text in zip(rows, texts, strict=True):
        row["text"] = text
    return {"ops": ops, "rows": rows, "texts": list(texts)}


def analogy(vae: Any, a: str, b: str, c: str, **generation: Any) -> dict[str, Any]:
    """Decode ``z_a - z_b + z_c`` of posterior means: what ``a`` has and ``b`` lacks, added to
    ``c``. ``generation`` goes to ``vae.decode``.

    Returns ``{"a", "b", "c", "z" (the latent, a list), "text"}``.
    """
    for name, text in (("a", a), ("b", b), ("c", c)):
        if not isinstance(text, str):
            raise ConfigError(f"{name} must be a sentence (a string), got {text!r}")
    za, zb, zc = vae.encode([a, b, c])
    z = combine(combine(za, zb, "sub"), zc, "sum")
    text = vae.decode(z[None], **generation)[0]
    return {"a": a, "b": b, "c": c, "z": [float(v) for v in z.detach().cpu()], "text": text}
