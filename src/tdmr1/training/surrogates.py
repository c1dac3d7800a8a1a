"""TDM-R1's surrogate reward, in two variants behind one interface used by the trainer:

- ``ImplicitSurrogate`` (the paper's): a LoRA role ``surrogate`` on the backbone, trained as a diffusion
  model with the group Bradley-Terry loss; its reward is the implicit d_ref - d, its generator direction
  x0_sur_cfg - x0_ref. A lagging EMA copy (``surrogate_old``) serves the PPO-style clip.
- ``ExplicitSurrogate`` (a labelled variant): a reward head r(x_tau, tau, prompt) on the frozen base's
  features (``reward_head.py``), trained with the same group Bradley-Terry loss on the same per-step
  states; its generator direction is the head's input gradient.

Each provides ``loss`` (one surrogate micro-step on trajectory states), ``margin`` (the reward of clean
images in a tau band, for the ``sur_rank`` diagnostic), ``reward_direction`` (the generator's reward
term) and ``after_step`` (bookkeeping after an optimizer step). ``group_reduce`` (several processes,
each with a share of every group) makes the Bradley-Terry group sums the whole groups'.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tdmr1.flow import bridge
from tdmr1.losses import dmd_normaliser, per_sample_mean
from tdmr1.reward_head import FeatureTap, PixelRewardHead, RewardHead
from tdmr1.rl_draws import draw_levels, group_noise, n_groups, per_group
from tdmr1.rl_losses import (
    GroupReduce,
    explicit_regression_loss,
    explicit_reward_direction,
    explicit_surrogate_loss,
    guided,
    surrogate_loss,
    surrogate_target,
)
from tdmr1.training.rl_config import RLConfig
from tdmr1.training.system import FewStepSystem, Text

IMPLICIT_ROLES = ["surrogate", "surrogate_old"]


class ImplicitSurrogate:
    """The paper's surrogate: LoRA roles ``surrogate`` / ``surrogate_old``, reward d_ref - d."""

    roles = IMPLICIT_ROLES

    def __init__(self, system: FewStepSystem, cfg: RLConfig, group_reduce: GroupReduce | None = None):
        self.system, self.cfg, self.group_reduce = system, cfg, group_reduce
        self.ref_role = "base" if cfg.reference == "base" else "surrogate_old"

    def parameters(self) -> list[nn.Parameter]:
        return self.system.roles.parameters("surrogate")

    def state_modules(self) -> dict[str, Any]:
        return {}  # the adapters live in the backbone's state

    def _distances(self, x_tau: Tensor, tau: Tensor, v_star: Tensor, cond: Text) -> dict[str, Tensor]:
        sys_ = self.system
        v_sur = sys_.velocity("surrogate", x_tau, tau, cond)
        with torch.no_grad():
            v_base = sys_.velocity("base", x_tau, tau, cond)
            v_old = sys_.velocity("surrogate_old", x_tau, tau, cond)
        return {
            "d": per_sample_mean((v_star - v_sur).pow(2)),
            "d_base": per_sample_mean((v_star - v_base).pow(2)),
            "d_old": per_sample_mean((v_star - v_old).pow(2)),
            "anchor": per_sample_mean((v_sur - v_base).pow(2)),
        }

    def loss(
        self, x_k: Tensor, s_k: Tensor, xi: Tensor, tau: Tensor, cond: Text, adv: Tensor, group: Tensor, weight: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """Group Bradley-Terry loss at x_tau bridged from the states x_k (levels s_k) with noise xi."""
        cfg = self.cfg
        x_tau, v_star = surrogate_target(x_k, s_k, xi, tau)
        dist = self._distances(x_tau, tau, v_star, cond)
        d_ref = dist["d_base"] if self.ref_role == "base" else dist["d_old"]
        return surrogate_loss(
            dist["d"],
            d_ref,
            adv,
            group,
            cfg.beta,
            step_weight=weight,
            d_old=dist["d_old"],
            ppo_clip=cfg.ppo_clip,
            anchor=dist["anchor"],
            d_base=dist["d_base"],
            anchor_limit=cfg.anchor_limit,
            anchor_weight=cfg.anchor_weight,
            group_reduce=self.group_reduce,
        )

    @torch.no_grad()
    def clean_reward(self, x_tau: Tensor, tau: Tensor, v_star: Tensor, cond: Text) -> Tensor:
        sys_ = self.system
        d = per_sample_mean((v_star - sys_.velocity("surrogate", x_tau, tau, cond)).pow(2))
        d_ref = per_sample_mean((v_star - sys_.velocity(self.ref_role, x_tau, tau, cond)).pow(2))
        return d_ref - d

    @torch.no_grad()
    def reward_direction(
        self, x0_hat: Tensor, x_tau_r: Tensor, tau_r: Tensor, cond: Text, uncond: Text
    ) -> tuple[Tensor, Tensor]:
        """(d_r, w_r): d_r = x0_sur_cfg - x0_ref at x_tau_r, w_r = mean|x0_hat - x0_sur_cfg|."""
        sys_, scale = self.system, self.cfg.surrogate_cfg
        if scale == 1.0:
            x0_sur = sys_.x0("surrogate", x_tau_r, tau_r, cond)
        else:
            x0_c, x0_u = sys_.x0_cond_uncond("surrogate", x_tau_r, tau_r, cond, uncond)
            x0_sur = guided(x0_u, x0_c, scale)
        x0_ref = sys_.x0(self.ref_role, x_tau_r, tau_r, cond)
        return x0_sur - x0_ref, dmd_normaliser(x0_hat, x0_sur)

    def after_step(self, step: int) -> None:
        """The lagging copy: surrogate_old <- lerp toward surrogate with a growing decay."""
        cfg = self.cfg
        decay = min(cfg.surrogate_ema_max, cfg.surrogate_ema_start + cfg.surrogate_ema_rate * step)
        self.system.roles.lerp_into("surrogate", "surrogate_old", decay)


class ExplicitSurrogate:
    """Labelled variant: a reward head on the frozen base's features; no surrogate LoRA roles."""

    roles: list[str] = []

    def __init__(
        self,
        system: FewStepSystem,
        cfg: RLConfig,
        tap_module: nn.Module,
        in_channels: int,
        text_dim: int,
        group_reduce: GroupReduce | None = None,
    ):
        self.system, self.cfg, self.group_reduce = system, cfg, group_reduce
        self.tap = FeatureTap(tap_module)
        channels, *size = system.model.image_shape
        self.pixels = cfg.explicit_input == "pixels"
        if self.pixels:
            head: nn.Module = PixelRewardHead(channels, text_dim, tuple(size), width=cfg.head_width)
        else:
            head = RewardHead(in_channels, text_dim, channels, width=cfg.head_width)
        self.head = head.to(system.device)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def state_modules(self) -> dict[str, Any]:
        return {"reward_head": self.head}

    def reward(self, x_tau: Tensor, tau: Tensor, cond: Text) -> Tensor:
        """r(x_tau, tau, prompt) [N]; differentiable in x_tau and the head (the backbone stays frozen)."""
        if self.pixels:
            return self.head(x_tau, tau, cond)
        with self.tap:
            self.system.velocity("base", x_tau, tau, cond)
        assert self.tap.features is not None, "the feature tap saw no forward"
        return self.head(self.tap.features, x_tau, tau, cond)

    def loss(
        self, x_k: Tensor, s_k: Tensor, xi: Tensor, tau: Tensor, cond: Text, adv: Tensor, group: Tensor, weight: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        x_tau, _ = surrogate_target(x_k, s_k, xi, tau)
        if self.pixels:
            r = self.head(x_tau, tau, cond)
        else:
            with torch.no_grad(), self.tap:
                self.system.velocity("base", x_tau, tau, cond)
            r = self.head(self.tap.features, x_tau, tau, cond)
        if self.cfg.explicit_loss == "mse":
            loss = explicit_regression_loss(r, adv, group, weight, self.group_reduce)
        else:
            loss = explicit_surrogate_loss(r * weight, adv, group, self.cfg.beta, self.group_reduce)
        return loss, {"clip_frac": 0.0}

    @torch.no_grad()
    def clean_reward(self, x_tau: Tensor, tau: Tensor, v_star: Tensor, cond: Text) -> Tensor:
        return self.reward(x_tau, tau, cond)

    def reward_direction(
        self, x0_hat: Tensor, x_tau_r: Tensor, tau_r: Tensor, cond: Text, uncond: Text
    ) -> tuple[Tensor, None]:
        """(d_r, None): the head's input gradient rescaled to RMS ``explicit_step``, normalised like the KL
        and CFG terms (so ``w_reward * explicit_step`` sets its strength)."""
        with torch.enable_grad():
            x = x_tau_r.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.reward(x, tau_r, cond).sum(), x)
        return explicit_reward_direction(grad, self.cfg.explicit_step), None

    def after_step(self, step: int) -> None:
        pass


Surrogate = ImplicitSurrogate | ExplicitSurrogate


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


def reward_point(
    x_n: Tensor,
    s_next: Tensor,
    group: Tensor,
    shift: float,
    t_min: float,
    generator: torch.Generator | None,
    t_max: float = 1.0,
    x0: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(x_tau_r, tau_r): the generator step's output bridged to a group-shared level in [t_min, t_max]
    with group-shared noise, where the reward direction is read. Rows whose state is noisier than
    ``t_max`` are bridged from ``x0`` (their clean prediction, level 0) instead, when it is given."""
    if x0 is not None and t_max < 1.0:
        above = s_next > t_max
        x_n = torch.where(above.view(-1, *[1] * (x_n.dim() - 1)), x0, x_n)
        s_next = torch.where(above, torch.zeros_like(s_next), s_next)
    first = torch.unique(group, return_inverse=True)[1]
    s_g = torch.zeros(int(first.max()) + 1, device=x_n.device).index_copy(0, first, s_next)
    tau_r = per_group(draw_levels(s_g, shift, generator, t_min=t_min, t_max=t_max), group)
    xi_r = group_noise(tuple(x_n.shape[1:]), group, generator, x_n.device)
    return bridge(x_n, s_next, tau_r, xi_r), tau_r
