"""The ``sur_rank`` diagnostic: does the surrogate rank images of the same prompt as the reward does
(within-prompt Pearson correlation of the advantages with the surrogate's reward of the clean images)?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from tdmr1.diffusion.flow import draw_levels
from tdmr1.r1.draws import group_noise, n_groups, per_group
from tdmr1.r1.losses import group_mean, surrogate_target
from tdmr1.tdm.system import Text

if TYPE_CHECKING:
    from tdmr1.r1.surrogate import Surrogate


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


@torch.no_grad()
def clean_margin(
    surrogate: Surrogate,
    clean: Tensor,
    cond: Text,
    group: Tensor,
    t_min: float,
    t_max: float,
    draws: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The surrogate's reward [N] of clean images, averaged over ``draws`` group-shared draws of a level
    in [t_min, t_max] and a noise image (the implicit margin d_ref - d, or the explicit head's r)."""
    sys_ = surrogate.system
    zeros = torch.zeros(len(clean), device=clean.device)
    out = torch.zeros(len(clean), device=clean.device)
    low = clean.new_zeros(n_groups(group))
    for _ in range(draws):
        tau = per_group(draw_levels(low, sys_.shift, generator, t_min, t_max), group)
        xi = group_noise(tuple(clean.shape[1:]), group, generator, clean.device)
        x_tau, v_star = surrogate_target(clean, zeros, xi, tau)
        out += surrogate.clean_reward(x_tau, tau, v_star, cond)
    return out / draws
