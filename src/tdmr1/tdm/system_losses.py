"""The TDM losses on a few-step system (docs/METHOD.md sec. 3), shared by ``distill`` and TDM-R1: each draws its
levels and noise, runs the roles and hands the tensors to the formulas of :mod:`tdmr1.tdm.losses`."""

from __future__ import annotations

import torch

from tdmr1.tdm.losses import direction_loss, dmd_normaliser, fake_score_loss, flow_target_from_x0, tdm_direction
from tdmr1.tdm.system import FewStepSystem


def fake_update(
    system: FewStepSystem,
    x_next: torch.Tensor,
    x0_hat: torch.Tensor,
    s_next: torch.Tensor,
    s_upper: torch.Tensor,
    text,
    base_weight: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fake-score DSM loss on the student's step output diffused to tau in (s_next, s_upper]."""
    tau, noise = fake_draws(system, s_next, s_upper, x_next.shape, generator)
    return fake_loss(system, x_next, x0_hat, s_next, tau, noise, text, base_weight)


def fake_draws(
    system: FewStepSystem,
    s_next: torch.Tensor,
    s_upper: torch.Tensor,
    shape: torch.Size | tuple[int, ...],
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fake update's draws (tau [N], noise [N, ...]): separate so that several processes can draw a
    whole batch's and keep their rows (``tdmr1.training.distributed``)."""
    tau = system.sample_levels(s_next, s_upper, generator=generator)
    return tau, torch.randn(shape, generator=generator, device=s_next.device)


def fake_loss(
    system: FewStepSystem,
    x_next: torch.Tensor,
    x0_hat: torch.Tensor,
    s_next: torch.Tensor,
    tau: torch.Tensor,
    noise: torch.Tensor,
    text,
    base_weight: float,
) -> torch.Tensor:
    """Fake-score DSM loss at x_next diffused to the drawn ``tau`` with ``noise``."""
    x_tau = system.diffuse(x_next.detach(), s_next, tau, noise)
    target = flow_target_from_x0(x_tau, x0_hat.detach(), tau)
    v_base = system.velocity("base", x_tau, tau, text).detach() if base_weight else None
    return fake_score_loss(system.velocity("fake", x_tau, tau, text), target, v_base, base_weight)


def generator_loss(
    system: FewStepSystem,
    x0_hat: torch.Tensor,
    x_next: torch.Tensor,
    s_next: torch.Tensor,
    cond,
    uncond,
    cfg: float,
    huber_c: float | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TDM generator loss: normalised (teacher_cfg - fake) direction at x_tau ~ bridge(x_next -> tau)."""
    with torch.no_grad():
        tau = system.sample_levels(s_next, generator=generator)
        noise = torch.randn(x_next.shape, generator=generator, device=x_next.device)
        x_tau = system.diffuse(x_next.detach(), s_next, tau, noise)
        x0_real_c, x0_real_u = system.x0_cond_uncond("base", x_tau, tau, cond, uncond)
        x0_real_cfg = x0_real_u + cfg * (x0_real_c - x0_real_u)
        x0_fake = system.x0("fake", x_tau, tau, cond)
        direction = tdm_direction(x0_real_c, x0_real_u, x0_fake, cfg)
        w = dmd_normaliser(x0_hat, x0_real_cfg)
    return direction_loss(x0_hat, direction, w, huber_c)
