"""Deterministic K-step samplers (Euler / DDIM eta=0, 2nd-order DPM-Solver++) on any velocity function
``(x, s) -> v`` of the flow convention, returning whole trajectories (no autograd, no global RNG), and
``SamplingConfig``, how a model is sampled."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from tdmr1.config import option
from tdmr1.diffusion.flow import flow_sigmas, uniform_sigmas
from tdmr1.errors import ConfigError

__all__ = [
    "SOLVERS",
    "SamplingConfig",
    "Trajectory",
    "VelocityFn",
    "sample",
    "schedule",
]

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""``(x [N, ...], s [N]) -> v [N, ...]``: a velocity predictor at noise level ``s``."""

Solver = Literal["euler", "dpm"]
SOLVERS: tuple[str, ...] = ("euler", "dpm")


@dataclass
class Trajectory:
    """A deterministic sampling path.

    ``states[k]`` is the state at level ``sigmas[k]`` (``states[0]`` is the initial noise, ``states[-1]``
    the final sample); ``x0_preds[k]`` is the model's data prediction ``x_k - s_k v_k`` at step ``k``.
    """

    states: Tensor  # [K+1, N, ...]
    sigmas: Tensor  # [K+1]
    x0_preds: Tensor  # [K, N, ...]

    @property
    def final(self) -> Tensor:
        """The final sample ``states[-1]`` (shape ``[N, ...]``)."""
        return self.states[-1]

    @property
    def num_steps(self) -> int:
        """K, the number of model evaluations."""
        return self.x0_preds.shape[0]


def _check_sigmas(sigmas: Tensor | Sequence[float], like: Tensor) -> Tensor:
    dtype = like.dtype if like.is_floating_point() else torch.float32
    sig = torch.as_tensor(sigmas, dtype=dtype, device=like.device)
    if sig.ndim != 1 or sig.shape[0] < 2:
        raise ValueError(f"sigmas must be a 1-D sequence of at least 2 levels, got shape {tuple(sig.shape)}")
    if not bool(torch.isfinite(sig).all()):
        raise ValueError("sigmas must be finite")
    if bool(((sig < 0) | (sig > 1)).any()):
        raise ValueError(f"sigmas must lie in [0, 1], got {sig.tolist()}")
    if not bool((sig[1:] < sig[:-1]).all()):
        raise ValueError(f"sigmas must be strictly decreasing (noisy -> clean), got {sig.tolist()}")
    return sig


def _lam(sig: float) -> float:
    """Half log-SNR of a flow level: ``log(alpha / sigma)`` with ``alpha = 1 - sigma``."""
    if sig <= 0.0:
        return math.inf
    if sig >= 1.0:
        return -math.inf
    return math.log(1.0 - sig) - math.log(sig)


def sample(
    velocity_fn: VelocityFn,
    noise: Tensor,
    sigmas: Tensor | Sequence[float],
    solver: Solver | str = "euler",
) -> Trajectory:
    """Integrate the probability-flow ODE from ``noise`` (at ``sigmas[0]``) down the levels ``sigmas``.

    Args:
        velocity_fn: ``(x [N, ...], s [N]) -> v``.
        noise: the initial state ``x_T``, shape ``[N, ...]`` (floating point).
        sigmas: ``K + 1`` strictly decreasing levels in [0, 1], e.g. :func:`tdmr1.diffusion.flow.flow_sigmas`.
        solver: ``"euler"``: ``x_{k+1} = x_k - (s_k - s_{k+1}) v_k`` (= DDIM with eta 0);
            ``"dpm"``: 2nd-order multistep DPM-Solver++ (midpoint), step for step the same as diffusers'
            ``DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")`` with its
            default options: first and last steps are first order (which on flow levels is exactly Euler),
            the others use the previous step's data prediction.

    Returns:
        a :class:`Trajectory` with ``K + 1`` states (``states[0]`` is ``noise``) and ``K`` x0 predictions.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.ndim < 1:
        raise ValueError("noise must be a floating-point tensor of shape [N, ...]")
    sig_t = _check_sigmas(sigmas, noise)
    sig = sig_t.tolist()
    num_steps = len(sig) - 1
    n = noise.shape[0]

    x = noise
    states = [x]
    x0_preds: list[Tensor] = []
    prev_x0: Tensor | None = None
    for k in range(num_steps):
        s, s_next = sig[k], sig[k + 1]
        v = velocity_fn(x, torch.full((n,), s, dtype=noise.dtype, device=noise.device))
        if v.shape != x.shape:
            raise ValueError(f"velocity_fn returned shape {tuple(v.shape)}, expected {tuple(x.shape)}")
        x0 = x - s * v
        if solver == "euler":
            x = x - (s - s_next) * v
        else:
            ratio = s_next / s
            if prev_x0 is None or k == num_steps - 1:
                # first-order DPM-Solver++ == DDIM == Euler on flow levels
                d = x0
            else:
                # multistep 2nd order (midpoint): D = D0 + 0.5 (h / h_prev) (D0 - D_prev)
                h = _lam(s_next) - _lam(s)
                h_prev = _lam(s) - _lam(sig[k - 1])
                r = 0.0 if math.isinf(h_prev) else h / h_prev
                d = x0 + (0.5 * r) * (x0 - prev_x0)
            # sigma_t/sigma_s x - alpha_t (e^{-h} - 1) D  with alpha = 1 - sigma  ==  (t/s) x + (1 - t/s) D
            x = ratio * x + (1.0 - ratio) * d
        prev_x0 = x0
        states.append(x)
        x0_preds.append(x0)

    return Trajectory(states=torch.stack(states), sigmas=sig_t, x0_preds=torch.stack(x0_preds))


@dataclass
class SamplingConfig:
    """How to sample: steps, guidance, solver and schedule."""

    steps: int = option(40, "sampling steps (NFE = steps x 2 with CFG > 1)")
    cfg: float = option(4.5, "classifier-free guidance scale (1 = off)")
    sampler: str = option("euler", "solver: euler (= DDIM eta 0) or dpm (2nd-order DPM-Solver++)")
    shift: float = option(3.0, "SD3 time shift of the schedule")

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"sampling.steps must be >= 1, got {self.steps}")
        if self.sampler not in ("euler", "dpm"):
            raise ConfigError(f"sampling.sampler must be euler or dpm, got {self.sampler!r}")
        if not 0.0 <= self.cfg < float("inf"):  # also rejects NaN
            raise ConfigError(f"sampling.cfg must be a finite number >= 0, got {self.cfg}")
        if not 0.0 < self.shift < float("inf"):
            raise ConfigError(f"sampling.shift must be a finite number > 0, got {self.shift}")

    @property
    def nfe(self) -> int:
        return self.steps * (2 if self.cfg != 1.0 else 1)


def schedule(cfg: SamplingConfig) -> torch.Tensor:
    """Noise levels s_0 = 1 > ... > s_K = 0 for the chosen solver."""
    if cfg.sampler == "dpm":
        return flow_sigmas(cfg.steps, shift=cfg.shift)
    return uniform_sigmas(cfg.steps, shift=cfg.shift)
