"""lmvae.schedule: the learning-rate schedule gives transformers' numbers."""

from __future__ import annotations

import torch

from lmvae.schedule import lr_factor


def test_lr_factor_gives_transformers_schedules_numbers():
    from transformers import get_scheduler

    names = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    for total, warmup in ((1, 0), (7, 1), (57, 3), (912, 45)):
        for ours, theirs in names.items():
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            sched = get_scheduler(theirs, opt, num_warmup_steps=warmup, num_training_steps=total)
            expected = [fn(step) for step in range(total + 2) for fn in sched.lr_lambdas]
            got = [lr_factor(step, warmup, total, ours) for step in range(total + 2)]
            assert got == expected, (ours, total, warmup)
