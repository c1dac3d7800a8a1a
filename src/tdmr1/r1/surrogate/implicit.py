"""The paper's implicit surrogate reward: LoRA roles ``surrogate`` / ``surrogate_old`` on the backbone,
trained as a diffusion model with the group Bradley-Terry loss; its reward is d_ref - d."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tdmr1.r1.config import RLConfig
from tdmr1.r1.losses import (
    GroupReduce,
    guided,
    surrogate_loss,
    surrogate_target,
)
from tdmr1.tdm.losses import dmd_normaliser, per_sample_mean
from tdmr1.tdm.system import FewStepSystem, Text

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
