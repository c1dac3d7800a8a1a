"""TDM-R1's random draws, shared by each prompt group: the trajectory state of a surrogate sample, its noise level
(uniform in pre-shift space, a margin above the state's own level), its noise image, the reward direction's
point; every draw from the caller's ``torch.Generator`` (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import torch
from torch import Tensor

from tdmr1.diffusion.flow import bridge, draw_levels

#: The authors' margin of tau above a state's level, in pre-shift units (20 of 1000 timesteps).
TAU_MARGIN = 0.02


def per_group(values: Tensor, group: Tensor) -> Tensor:
    """Broadcast one value per group (rows of ``values``, in sorted group-id order) to each sample."""
    _, inverse = torch.unique(group, return_inverse=True)
    return values[inverse]


def n_groups(group: Tensor) -> int:
    return len(torch.unique(group))


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
