"""The ``sur_rank`` diagnostic: does the surrogate rank images of the same prompt as the reward does
(within-prompt Pearson correlation of the advantages with the surrogate's reward of the clean images)?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from tdmr1.diffusion.flow import draw_levels
from tdmr1.r1.config import RLConfig
from tdmr1.r1.draws import group_noise
from tdmr1.r1.losses import group_mean, surrogate_target
from tdmr1.r1.prompt_stream import tag_rows
from tdmr1.tdm.system import Text
from tdmr1.training.distributed import BatchLayout

if TYPE_CHECKING:
    from tdmr1.r1.rollout import Rollout
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
    ids: Tensor | None = None,
    chunk: int | None = None,
) -> Tensor:
    """The surrogate's reward [N] of clean images, averaged over ``draws`` group-shared draws of a level
    in [t_min, t_max] and a noise image (the implicit margin d_ref - d, or the explicit head's r). The draws
    are made for the groups ``ids`` (sorted; default: those of ``group``; several processes: the whole
    batch's), the surrogate's forwards in chunks of at most ``chunk`` images."""
    sys_ = surrogate.system
    ids = torch.unique(group) if ids is None else ids
    at = torch.searchsorted(ids, group)  # each row's group among the draws
    zeros = torch.zeros(len(clean), device=clean.device)
    out = torch.zeros(len(clean), device=clean.device)
    low = clean.new_zeros(len(ids))
    for _ in range(draws):
        tau = draw_levels(low, sys_.shift, generator, t_min, t_max)[at]
        xi = group_noise(tuple(clean.shape[1:]), ids, generator, clean.device)[at]
        x_tau, v_star = surrogate_target(clean, zeros, xi, tau)
        rewards = [
            surrogate.clean_reward(x_tau[rows], tau[rows], v_star[rows], (cond[0][rows], cond[1][rows]))
            for rows in _chunks(len(clean), chunk or len(clean))
        ]
        out += torch.cat(rewards)
    return out / draws


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, i + size) for i in range(0, n, size)]


def surrogate_rank(
    surrogate: Surrogate, ro: Rollout, layout: BatchLayout, cfg: RLConfig, step: int, device: torch.device
) -> dict[str, float]:
    """Within-prompt correlation of ``ro``'s advantages with the surrogate's reward of the clean images
    (``sur_rank``: tau in [t_min_surrogate, t_max_surrogate], ``sur_rank_draws`` draws), and the same in
    each band of ``sur_rank_bands`` (half the draws each). Its own random generator: training is unchanged."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + step)
    adv, all_groups = layout.gather_rows(ro.adv), layout.gather_rows(ro.group)
    ids = torch.unique(all_groups)  # draws for the whole batch's groups (a process may hold some of them only)

    def margins(t_min: float, t_max: float, draws: int) -> Tensor:
        args = (ro.states[-1], ro.cond, ro.group, t_min, t_max, draws, gen, ids, layout.forward_rows)
        return layout.gather_rows(clean_margin(surrogate, *args))

    def rank(t_min: float, t_max: float, draws: int) -> float:
        return pearson(adv, margins(t_min, t_max, draws), all_groups)

    margin = margins(cfg.t_min_surrogate, cfg.t_max_surrogate, cfg.sur_rank_draws)
    out = {"sur_rank": pearson(adv, margin, all_groups)}
    for tag, rows in tag_rows(ro.tags, all_groups).items():
        out[f"sur_rank/{tag}"] = pearson(adv[rows], margin[rows], all_groups[rows])
    bands = cfg.sur_rank_bands
    for lo, hi in zip(bands, bands[1:], strict=False):
        out[f"sur_rank_tau_{lo:.2f}_{hi:.2f}"] = rank(lo, hi, max(cfg.sur_rank_draws // 2, 1))
    return out
