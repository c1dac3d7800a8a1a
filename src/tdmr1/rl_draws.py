"""Random draws of TDM-R1, shared by each prompt group: which trajectory state a surrogate sample comes
from, the noise level it is diffused to, and its noise image. Every draw takes the caller's
``torch.Generator`` so that a run owns its randomness (exact resume, diagnostics that do not perturb it).

Levels are drawn uniformly in the schedule's pre-shift space ``u`` (``s = time_shift(u)``), as the
authors do, between a lower bound that keeps ``tau`` a margin above the state's own level ``s_k`` (the
bridge coefficient b -> 0 there and the velocity target blows up) and an upper bound ``t_max``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tdmr1.flow import inverse_time_shift, time_shift

#: The authors' margin of tau above a state's level, in pre-shift units (20 of 1000 timesteps).
TAU_MARGIN = 0.02


def per_group(values: Tensor, group: Tensor) -> Tensor:
    """Broadcast one value per group (rows of ``values``, in sorted group-id order) to each sample."""
    _, inverse = torch.unique(group, return_inverse=True)
    return values[inverse]


def n_groups(group: Tensor) -> int:
    return len(torch.unique(group))


def draw_levels(
    low: Tensor,
    shift: float,
    generator: torch.Generator | None = None,
    t_min: float = 0.0,
    t_max: Tensor | float = 1.0,
    margin: float = 0.0,
) -> Tensor:
    """tau [N] uniform in pre-shift space between max(inv(low) + margin, inv(t_min)) and inv(t_max)
    (a float or per-sample levels), shifted back. The lower bound always wins: tau never comes closer
    than ``margin`` to ``low``."""
    u_low = torch.maximum(
        inverse_time_shift(low, shift) + margin, inverse_time_shift(torch.full_like(low, t_min), shift)
    )
    u_low = u_low.clamp(max=1.0)
    high = torch.as_tensor(t_max, dtype=low.dtype, device=low.device).expand_as(low)
    u_high = torch.maximum(inverse_time_shift(high, shift), u_low)
    u = u_low + (u_high - u_low) * torch.rand(low.shape, generator=generator, device=low.device)
    return time_shift(u, shift).clamp(min=low, max=torch.ones_like(low))


def draw_state_indices(
    num_groups: int,
    steps: int,
    generator: torch.Generator | None = None,
    clean_share: float = 0.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """One trajectory index k in 1..K per group: P(k) proportional to k (the authors' weighting), except
    that a ``clean_share`` of the groups is put on the clean state k = K."""
    probs = torch.arange(1, steps + 1, dtype=torch.float, device=device)
    k = torch.multinomial(probs / probs.sum(), num_groups, replacement=True, generator=generator) + 1
    if clean_share > 0:
        clean = torch.rand(num_groups, generator=generator, device=device) < clean_share
        k = torch.where(clean, torch.full_like(k, steps), k)
    return k


def draw_surrogate_points(
    sigmas: Tensor,
    shift: float,
    group: Tensor,
    generator: torch.Generator | None = None,
    t_min: float = 0.0,
    t_max: float = 1.0,
    margin: float = TAU_MARGIN,
    clean_share: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Per sample (group-shared): the state index k [N] and the surrogate's noise level tau [N].

    tau lies in [max(s_k, t_min), t_max] with a pre-shift ``margin`` above s_k (``sigmas`` is the
    student's schedule, ``sigmas[K] = 0`` the clean state)."""
    steps = len(sigmas) - 1
    k_g = draw_state_indices(n_groups(group), steps, generator, clean_share, sigmas.device)
    tau_g = draw_levels(sigmas[k_g], shift, generator, t_min, t_max, margin)
    return per_group(k_g, group), per_group(tau_g, group)


def group_noise(
    shape: tuple[int, ...], group: Tensor, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """A standard-normal image per group, broadcast to the group's samples: [N, *shape]."""
    return per_group(torch.randn((n_groups(group), *shape), generator=generator, device=device), group)
