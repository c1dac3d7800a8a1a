"""Exponential moving average of a module's parameters (kept as a full copy)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``ema = decay * ema + (1 - decay) * param`` with optional warm-up ``min(decay, (1+n)/(10+n))``."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        super().__init__()
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.num_updates += 1
