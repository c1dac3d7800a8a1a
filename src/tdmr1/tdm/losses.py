"""Loss functions of TDM distillation and TDM-R1 as small pure functions (tested one by one). Shapes: images
[N, C, H, W], per-sample quantities [N]; ``sg`` = stop-gradient (``.detach()``)."""

from __future__ import annotations

from torch import Tensor

from tdmr1.diffusion.flow import expand_like


def per_sample_mean(x: Tensor) -> Tensor:
    """Mean over every dimension but the first: [N, ...] -> [N]."""
    return x.flatten(1).mean(dim=1)


def flow_target_from_x0(x_tau: Tensor, x0: Tensor, tau: Tensor) -> Tensor:
    """Velocity target eps - x0 of a point x_tau = (1-tau) x0 + tau eps whose clean image is ``x0``."""
    return (x_tau - x0) / expand_like(tau, x_tau).clamp_min(1e-4)


def dmd_normaliser(x0_hat: Tensor, x0_ref: Tensor) -> Tensor:
    """DMD's per-sample weight w = mean|x0_hat - x0_ref| (detached, floored to avoid division by 0)."""
    return per_sample_mean((x0_hat - x0_ref).abs()).detach().clamp_min(1e-5)


def direction_loss(x0_hat: Tensor, direction: Tensor, normaliser: Tensor, huber_c: float | None = None) -> Tensor:
    """mean((x0_hat - sg(x0_hat + direction))^2 / w): its gradient moves x0_hat along ``direction``/w.

    With ``huber_c`` the squared error is replaced by the pseudo-Huber sqrt(e^2 + c^2) - c.
    """
    err = x0_hat - (x0_hat + direction).detach()
    if huber_c is None:
        per = per_sample_mean(err.pow(2))
    else:
        per = per_sample_mean((err.pow(2) + huber_c**2).sqrt() - huber_c)
    return (per / normaliser.detach()).mean()


def tdm_direction(x0_real_cond: Tensor, x0_real_uncond: Tensor, x0_fake: Tensor, cfg: float) -> Tensor:
    """TDM/DMD generator direction: (real_cond - fake) + (cfg - 1)(real_cond - real_uncond)."""
    return (x0_real_cond - x0_fake) + (cfg - 1.0) * (x0_real_cond - x0_real_uncond)


def fake_score_loss(
    v_fake: Tensor, v_target: Tensor, v_base: Tensor | None = None, base_weight: float = 0.02
) -> Tensor:
    """Denoising score matching of the fake score (plain MSE) + ``base_weight`` x MSE toward the frozen base."""
    loss = (v_fake - v_target.detach()).pow(2).mean()
    if v_base is not None and base_weight:
        loss = loss + base_weight * (v_fake - v_base.detach()).pow(2).mean()
    return loss
