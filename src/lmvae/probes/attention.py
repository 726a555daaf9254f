"""How much the decoder reads the injected slots: the attention mass each layer puts on them.

Near 0, the slots are ignored and the decoder writes its own prior; near 1 in every layer, they
swamp the sentence's own context (a known route to looping outputs).  Per layer and per output
position, averaged over heads and sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model import LanguageVAE


@torch.no_grad()
def slot_attention_mass(model: LanguageVAE, texts: Sequence[str], batch_size: int = 32) -> dict:
    """``{"per_layer": [L], "per_position": [T], "mean": float, "num_slots": int}`` over the
    real tokens of ``texts`` (teacher-forced, z = posterior mean)."""
    texts = list(texts)
    layer_sums = None
    position_sums: list[float] = []
    position_counts: list[int] = []
    total = 0.0
    count = 0
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        z = model.encode(chunk)
        batch = model.decoder_inputs(chunk)
        mass = model.decoder.slot_attention(z, batch["input_ids"], batch["attention_mask"])
        real = batch["attention_mask"].bool()  # (B, T)
        per_layer = (mass * real).sum((1, 2))  # (L,)
        layer_sums = per_layer if layer_sums is None else layer_sums + per_layer
        by_position = (mass.mean(0) * real).sum(0)  # (T,)
        for t in range(by_position.shape[0]):
            if t == len(position_sums):
                position_sums.append(0.0)
                position_counts.append(0)
            position_sums[t] += float(by_position[t])
            position_counts[t] += int(real[:, t].sum())
        total += float(mass.mean(0)[real].sum())
        count += int(real.sum())
    return {
        "per_layer": (layer_sums / max(count, 1)).tolist(),
        "per_position": [
            s / max(c, 1) for s, c in zip(position_sums, position_counts, strict=True)
        ],
        "mean": total / max(count, 1),
        "num_slots": model.decoder.num_slots,
    }
