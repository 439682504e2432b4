"""The EMA warm-up: early averages forget the initialisation, late ones use the set decay."""

from __future__ import annotations

import torch
from torch import nn

from facesr.train.steps import ema_decay_at, ema_update


def test_ema_decay_warms_up_to_the_configured_value() -> None:
    assert ema_decay_at(0, 0.999) == 0.1
    assert all(ema_decay_at(i, 0.999) <= ema_decay_at(i + 1, 0.999) for i in range(5000))
    assert ema_decay_at(100_000, 0.999) == 0.999


def test_warmed_up_ema_forgets_the_initial_weights() -> None:
    torch.manual_seed(0)
    model, ema = nn.Linear(4, 4), nn.Linear(4, 4)  # ema starts from other (random) weights
    start = ema.weight.detach().clone()
    for step in range(1000):
        ema_update(ema, model, ema_decay_at(step, 0.999))
    left = (ema.weight - model.weight).abs().max() / (start - model.weight).abs().max()
    assert left < 0.02  # a plain 0.999 average would still hold ~37% of the start
