"""Rectified-flow maths as small pure functions: noising, x0/eps/velocity conversions, the bridge kernel, time
shift, schedules, level draws. ``x_s = (1 - s) x0 + s eps``, ``v = eps - x0`` (docs/METHOD.md sec. 2); a level
``s`` is a float, a 0-dim tensor or an ``[N]`` tensor broadcast over ``x`` (:func:`expand_like`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "add_noise",
    "bridge",
    "bridge_coefficients",
    "draw_levels",
    "euler_step",
    "eps_from_velocity",
    "expand_like",
    "flow_sigmas",
    "inverse_time_shift",
    "sample_logit_normal",
    "time_shift",
    "uniform_sigmas",
    "velocity_from_x0_eps",
    "x0_from_velocity",
]

Level = float | Tensor


def expand_like(s: Level, x: Tensor) -> Tensor:
    """Return ``s`` as a tensor on ``x``'s device and dtype that broadcasts against ``x``.

    A python float or 0-dim tensor becomes a 0-dim tensor; a tensor of shape ``[N]`` with
    ``N == x.shape[0]`` becomes ``[N, 1, ..., 1]``; a tensor that already has ``x.ndim`` dims is
    returned as is (cast). Anything else raises ``ValueError``.
    """
    t = torch.as_tensor(s, dtype=x.dtype, device=x.device)
    if t.ndim == 0 or t.ndim == x.ndim:
        return t
    if t.ndim == 1 and x.ndim >= 1 and t.shape[0] == x.shape[0]:
        return t.reshape(t.shape[0], *([1] * (x.ndim - 1)))
    raise ValueError(
        f"noise level of shape {tuple(t.shape)} does not broadcast against x of shape {tuple(x.shape)}; "
        "expected a float, a 0-dim tensor or a tensor of shape [N]"
    )


def add_noise(x0: Tensor, eps: Tensor, s: Level) -> Tensor:
    """Forward noising: ``x_s = (1 - s) x0 + s eps``."""
    s_ = expand_like(s, x0)
    return (1 - s_) * x0 + s_ * eps


def velocity_from_x0_eps(x0: Tensor, eps: Tensor) -> Tensor:
    """The flow-matching target ``v = eps - x0`` (independent of ``s``)."""
    return eps - x0


def x0_from_velocity(x_s: Tensor, v: Tensor, s: Level) -> Tensor:
    """Data prediction from a velocity: ``x0_hat = x_s - s v``."""
    return x_s - expand_like(s, x_s) * v


def eps_from_velocity(x_s: Tensor, v: Tensor, s: Level) -> Tensor:
    """Noise prediction from a velocity: ``eps_hat = x_s + (1 - s) v``."""
    return x_s + (1 - expand_like(s, x_s)) * v


def euler_step(x_s: Tensor, v: Tensor, s: Level, s_next: Level) -> Tensor:
    """One Euler step of the probability-flow ODE: ``x_{s'} = x_s - (s - s') v``.

    Identical to DDIM with eta = 0: ``(1 - s') x0_hat + s' eps_hat`` with the model's own predictions.
    """
    return x_s - (expand_like(s, x_s) - expand_like(s_next, x_s)) * v


def time_shift(u: Level, shift: float = 3.0) -> Level:
    """SD3-style time shift ``shift u / (1 + (shift - 1) u)``; maps [0, 1] onto [0, 1], 0 -> 0, 1 -> 1."""
    return shift * u / (1 + (shift - 1) * u)


def inverse_time_shift(s: Level, shift: float = 3.0) -> Level:
    """Inverse of :func:`time_shift`: ``u = s / (shift - (shift - 1) s)``."""
    return s / (shift - (shift - 1) * s)


def bridge_coefficients(s: Level, tau: Level) -> tuple[Level, Level]:
    """Coefficients of the forward kernel from level ``s`` to a noisier level ``tau >= s``.

    ``x_tau = a x_s + b xi`` with ``a = (1 - tau) / (1 - s)`` and ``b = sqrt(tau^2 - (a s)^2)`` (tiny
    negatives from rounding are clamped to 0). This maps the marginal ``(1-s) x0 + s eps`` onto
    ``(1-tau) x0 + tau eps'`` and composes: bridging ``s -> u -> tau`` equals bridging ``s -> tau``.
    At ``s = tau = 1`` the kernel is the identity (``a = 1, b = 0``).

    Returns python floats when both inputs are numbers, tensors (broadcast shape) otherwise.
    Raises ``ValueError`` when ``tau < s`` or a level is outside [0, 1].
    """
    if not isinstance(s, Tensor) and not isinstance(tau, Tensor):
        s_f, tau_f = float(s), float(tau)
        if not (0.0 <= s_f <= 1.0 and 0.0 <= tau_f <= 1.0):
            raise ValueError(f"bridge levels must lie in [0, 1], got s={s_f}, tau={tau_f}")
        if tau_f < s_f:
            raise ValueError(f"bridge goes from s to a noisier tau >= s, got s={s_f} > tau={tau_f}")
        a_f = (1.0 - tau_f) / (1.0 - s_f) if s_f < 1.0 else 1.0
        return a_f, math.sqrt(max(tau_f * tau_f - (a_f * s_f) ** 2, 0.0))

    ref = s if isinstance(s, Tensor) else tau
    assert isinstance(ref, Tensor)
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    s_t = torch.as_tensor(s, dtype=dtype, device=ref.device)
    tau_t = torch.as_tensor(tau, dtype=dtype, device=ref.device)
    if bool(((s_t < 0) | (s_t > 1) | (tau_t < 0) | (tau_t > 1)).any()):
        raise ValueError("bridge levels must lie in [0, 1]")
    if bool((tau_t < s_t).any()):
        raise ValueError("bridge goes from s to a noisier tau >= s, got some tau < s")
    s_t, tau_t = torch.broadcast_tensors(s_t, tau_t)
    denom = 1 - s_t
    safe = denom > 0
    one = torch.ones_like(s_t)
    a = torch.where(safe, (1 - tau_t) / torch.where(safe, denom, one), one)
    b = torch.sqrt(torch.clamp(tau_t * tau_t - (a * s_t) ** 2, min=0.0))
    return a, b


def bridge(x_s: Tensor, s: Level, tau: Level, noise: Tensor) -> Tensor:
    """Diffuse a state at level ``s`` to the noisier level ``tau``: ``a x_s + b noise`` (see
    :func:`bridge_coefficients`); ``noise`` is standard normal with ``x_s``'s shape."""
    a, b = bridge_coefficients(s, tau)
    return expand_like(a, x_s) * x_s + expand_like(b, x_s) * noise


def flow_sigmas(num_steps: int, shift: float = 3.0, num_train_timesteps: int = 1000) -> Tensor:
    """The ``num_steps + 1`` noise levels (high -> 0, float32) of diffusers' flow DPM-Solver schedule.

    Bit-for-bit equal to ``DPMSolverMultistepScheduler(use_flow_sigmas=True,
    prediction_type="flow_prediction", flow_shift=shift).set_timesteps(num_steps)`` then ``.sigmas``:
    ``u = 1 - linspace(1, 1/T, K+1)``, shifted, reversed, the trailing 0 dropped and a final 0 appended
    (so the first level is ``time_shift(1 - 1/T)``, slightly below 1). Computed in float64 numpy, as there.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    alphas = np.linspace(1, 1 / num_train_timesteps, num_steps + 1)
    u = 1.0 - alphas
    sig = np.flip(shift * u / (1 + (shift - 1) * u))[:-1].copy()
    sig = np.concatenate([sig, [0.0]]).astype(np.float32)
    return torch.from_numpy(sig)


def uniform_sigmas(num_steps: int, shift: float = 3.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``time_shift(linspace(1, 0, K+1), shift)``: K+1 levels from exactly 1 to exactly 0 (plain Euler)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    u = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    out = time_shift(u, shift)
    assert isinstance(out, Tensor)
    return out.to(dtype)


def sample_logit_normal(
    n: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Training levels ``s = sigmoid(mean + std z)``, ``z ~ N(0, 1)``, shape ``[n]``, in (0, 1)."""
    if generator is not None and device is None:
        device = generator.device
    z = torch.randn(n, generator=generator, device=device, dtype=dtype)
    return torch.sigmoid(mean + std * z)


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
