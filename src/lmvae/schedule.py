"""The learning-rate schedule of a run (the beta schedule is part of the objective)."""

from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Learning-rate multiplier: a linear warm-up from 0 over ``warmup_steps``, then "cosine"
    (half a cosine down to 0 at ``total_steps``), "linear" (down to 0) or "constant".  The same
    numbers as transformers' ``get_scheduler`` for these names."""
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    if schedule == "constant":
        return 1.0
    remaining = float(max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return max(0.0, float(total_steps - step) / remaining)
    progress = float(step - warmup_steps) / remaining
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
