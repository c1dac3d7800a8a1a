"""How well the surrogate ranks a batch: the correlation, within prompt groups, between the advantages
and the surrogate's implicit reward margin d_ref - d at the clean state, averaged over several noise
draws (group-shared noise and level, as in training). Measured on a fresh batch before the surrogate
trains on it, this is the held-out signal that tells whether TDM-R1's reward direction means anything.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tdmr1.losses import per_sample_mean
from tdmr1.rl_losses import group_mean, surrogate_target
from tdmr1.training.system import FewStepSystem, Text


def pearson(a: Tensor, b: Tensor, group: Tensor | None = None) -> float:
    """Correlation of two [N] tensors (0 when either is constant). With ``group``, both are centred
    within each prompt group first: advantages only rank images of the same prompt, so the margin's
    between-prompt spread is noise for this measure."""
    a, b = a.float(), b.float()
    if group is not None:
        a, b = a - group_mean(a, group), b - group_mean(b, group)
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    return float((a * b).sum().item() / denom) if denom > 0 else 0.0


@torch.no_grad()
def clean_margin(
    system: FewStepSystem,
    clean: Tensor,
    cond: Text,
    group: Tensor,
    ref_role: str,
    t_min: float,
    draws: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-image margin d_ref - d [N] of the clean images, averaged over ``draws`` draws of a level in
    [t_min, 1] and a noise image, both shared by each prompt group."""
    _, inverse = torch.unique(group, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    dev = clean.device
    zeros = torch.zeros(len(clean), device=dev)
    margin = torch.zeros(len(clean), device=dev)
    low = torch.full((n_groups,), t_min, device=dev)
    for _ in range(draws):
        tau = system.sample_levels(low, generator=generator)[inverse]
        xi = torch.randn((n_groups, *clean.shape[1:]), generator=generator, device=dev)[inverse]
        x_tau, v_star = surrogate_target(clean, zeros, xi, tau)
        d = per_sample_mean((v_star - system.velocity("surrogate", x_tau, tau, cond)).pow(2))
        d_ref = per_sample_mean((v_star - system.velocity(ref_role, x_tau, tau, cond)).pow(2))
        margin += d_ref - d
    return margin / draws
