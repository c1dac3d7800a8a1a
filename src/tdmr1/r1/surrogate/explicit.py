"""The explicit surrogate (a labelled variant): a reward head on the frozen base's features (or the pixels),
the same group Bradley-Terry loss, its input gradient as the generator's reward direction."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tdmr1.r1.config import RLConfig
from tdmr1.r1.losses import (
    GroupReduce,
    explicit_regression_loss,
    explicit_reward_direction,
    explicit_surrogate_loss,
    surrogate_target,
)
from tdmr1.r1.surrogate.head import FeatureTap, PixelRewardHead, RewardHead
from tdmr1.tdm.system import FewStepSystem, Text


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
            head: nn.Module = PixelRewardHead(
                channels, text_dim, tuple(size), width=cfg.head_width, prompt=cfg.explicit_prompt
            )
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
