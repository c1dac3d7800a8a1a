"""Ranking agreement between two per-image scores: the Pearson correlation within prompt groups, the
measure behind ``sur_rank`` (does the surrogate rank images of the same prompt as the reward does?)."""

from __future__ import annotations

from torch import Tensor

from tdmr1.rl_losses import group_mean


def pearson(a: Tensor, b: Tensor, group: Tensor | None = None) -> float:
    """Correlation of two [N] tensors (0 when either is constant). With ``group``, both are centred
    within each prompt group first: advantages only rank images of the same prompt, so a score's
    between-prompt spread is noise for this measure."""
    a, b = a.float(), b.float()
    if group is not None:
        a, b = a - group_mean(a, group), b - group_mean(b, group)
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    return float((a * b).sum().item() / denom) if denom > 0 else 0.0
