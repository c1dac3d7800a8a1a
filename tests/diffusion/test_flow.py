"""Tests for tdmr1.diffusion.flow: conversions, time shift, the bridge kernel and the timestep schedules."""

from __future__ import annotations

import math

import pytest
import torch

from tdmr1.diffusion.flow import (
    add_noise,
    bridge,
    bridge_coefficients,
    eps_from_velocity,
    euler_step,
    expand_like,
    flow_sigmas,
    inverse_time_shift,
    sample_logit_normal,
    time_shift,
    uniform_sigmas,
    velocity_from_x0_eps,
    x0_from_velocity,
)

BRIDGE_TRIPLES = [(0.0, 0.3, 0.7), (0.1, 0.5, 0.9), (0.25, 0.26, 0.99), (0.5, 0.75, 1.0), (0.0, 0.0, 0.4)]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- conversions


def test_expand_like_shapes() -> None:
    x = torch.zeros(3, 2, 4, 4)
    assert expand_like(0.5, x).shape == ()
    assert expand_like(torch.tensor([0.1, 0.2, 0.3]), x).shape == (3, 1, 1, 1)
    assert expand_like(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), x).dtype == x.dtype
    with pytest.raises(ValueError):
        expand_like(torch.tensor([0.1, 0.2]), x)


def test_conversions_round_trip() -> None:
    g = _gen(1)
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    s = torch.tensor([0.05, 0.3, 0.5, 0.8, 1.0], dtype=torch.float64)
    x_s = add_noise(x0, eps, s)
    # per-sample level really is applied per sample
    torch.testing.assert_close(x_s[1], 0.7 * x0[1] + 0.3 * eps[1])
    v = velocity_from_x0_eps(x0, eps)
    torch.testing.assert_close(v, eps - x0)
    torch.testing.assert_close(x0_from_velocity(x_s, v, s), x0)
    torch.testing.assert_close(eps_from_velocity(x_s, v, s), eps)
    # x0 / eps predictions re-noise back to x_s
    torch.testing.assert_close(add_noise(x0_from_velocity(x_s, v, s), eps_from_velocity(x_s, v, s), s), x_s)
    # along a straight path the Euler step is exact, for float and per-sample levels
    s_next = s * 0.5
    torch.testing.assert_close(euler_step(x_s, v, s, s_next), add_noise(x0, eps, s_next))
    torch.testing.assert_close(euler_step(x_s, v, s, 0.0), x0)
    # python-float level
    torch.testing.assert_close(x0_from_velocity(add_noise(x0, eps, 0.4), v, 0.4), x0)


def test_time_shift_round_trip_and_endpoints() -> None:
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    for shift in (1.0, 3.0, 0.5, 6.0):
        y = time_shift(u, shift)
        torch.testing.assert_close(inverse_time_shift(y, shift), u)
        torch.testing.assert_close(time_shift(inverse_time_shift(u, shift), shift), u)
        assert float(y[0]) == 0.0 and float(y[-1]) == pytest.approx(1.0)
        assert bool((y[1:] > y[:-1]).all())
    assert time_shift(0.5) == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    assert inverse_time_shift(0.75) == pytest.approx(0.5)
    # shift 3 pushes levels towards noise
    assert bool((time_shift(u[1:-1], 3.0) > u[1:-1]).all())


# ---------------------------------------------------------------- bridge


@pytest.mark.parametrize("s,u,tau", BRIDGE_TRIPLES)
def test_bridge_composes_analytically(s: float, u: float, tau: float) -> None:
    a_su, b_su = bridge_coefficients(s, u)
    a_ut, b_ut = bridge_coefficients(u, tau)
    a_st, b_st = bridge_coefficients(s, tau)
    assert a_su * a_ut == pytest.approx(a_st, abs=1e-12)
    # variance of a_ut (a_su x + b_su xi1) + b_ut xi2
    assert a_ut**2 * b_su**2 + b_ut**2 == pytest.approx(b_st**2, abs=1e-12)
    # the kernel maps the marginal variance at s (data var 0) onto the one at tau
    assert a_st == pytest.approx((1 - tau) / (1 - s))
    assert (a_st * s) ** 2 + b_st**2 == pytest.approx(tau**2)


def test_bridge_coefficients_tensor_matches_float_and_validates() -> None:
    s = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    tau = torch.tensor([0.5, 0.2, 0.8, 0.95, 1.0], dtype=torch.float64)
    a, b = bridge_coefficients(s, tau)
    for i in range(5):
        af, bf = bridge_coefficients(float(s[i]), float(tau[i]))
        assert float(a[i]) == pytest.approx(af) and float(b[i]) == pytest.approx(bf)
    # identity kernel at tau == s, including s = tau = 1
    assert float(a[1]) == pytest.approx(1.0) and float(b[1]) == 0.0
    assert float(a[4]) == 1.0 and float(b[4]) == 0.0
    assert bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    with pytest.raises(ValueError):
        bridge_coefficients(0.6, 0.5)
    with pytest.raises(ValueError):
        bridge_coefficients(torch.tensor([0.1, 0.6]), torch.tensor([0.2, 0.5]))
    with pytest.raises(ValueError):
        bridge_coefficients(0.1, 1.5)


@pytest.mark.parametrize("s,u,tau", BRIDGE_TRIPLES[:3])
def test_bridge_composes_by_sampling(s: float, u: float, tau: float) -> None:
    g = _gen(2)
    n = 200_000
    x_s = torch.full((n,), 0.8, dtype=torch.float64)
    two = bridge(
        bridge(x_s, s, u, torch.randn(n, generator=g, dtype=torch.float64)),
        u,
        tau,
        torch.randn(n, generator=g, dtype=torch.float64),
    )
    one = bridge(x_s, s, tau, torch.randn(n, generator=g, dtype=torch.float64))
    a_st, b_st = bridge_coefficients(s, tau)
    for y in (two, one):
        assert float(y.mean()) == pytest.approx(a_st * 0.8, abs=5 * b_st / math.sqrt(n) + 1e-9)
        assert float(y.var()) == pytest.approx(b_st**2, rel=0.02)
    assert float(two.var()) == pytest.approx(float(one.var()), rel=0.02)


@pytest.mark.parametrize("s,tau", [(0.0, 0.6), (0.2, 0.5), (0.5, 0.9), (0.3, 1.0)])
def test_bridge_preserves_flow_marginal(s: float, tau: float) -> None:
    g = _gen(3)
    n = 200_000
    # non-Gaussian data: x0 in {-1.5, +1.5} (per-sample levels given as tensors this time)
    x0 = (torch.randint(0, 2, (n, 2), generator=g) * 3.0 - 1.5).double()
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    s_vec = torch.full((n,), s, dtype=torch.float64)
    x_s = add_noise(x0, eps, s_vec)
    x_tau = bridge(
        x_s,
        s_vec,
        torch.full((n,), tau, dtype=torch.float64),
        torch.randn(n, 2, generator=g, dtype=torch.float64),
    )
    # x_tau - (1 - tau) x0 must be tau * N(0, 1), independent of x0
    resid = x_tau - (1 - tau) * x0
    assert float(resid.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(resid.std()) == pytest.approx(tau, rel=0.01)
    corr = float(((resid - resid.mean()) * (x0 - x0.mean())).mean() / (resid.std() * x0.std()))
    assert abs(corr) < 0.01


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("num_steps", [1, 2, 4, 10, 40])
@pytest.mark.parametrize("shift", [3.0, 1.0])
def test_flow_sigmas_match_diffusers(num_steps: int, shift: float) -> None:
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift)
    sched.set_timesteps(num_steps)
    ours = flow_sigmas(num_steps, shift=shift)
    assert ours.dtype == sched.sigmas.dtype == torch.float32
    assert ours.shape == (num_steps + 1,)
    assert torch.equal(ours, sched.sigmas)
    assert float(ours[-1]) == 0.0


def test_flow_sigmas_four_steps_values() -> None:
    # METHOD.md: "sigmas about [1.0, 0.90, 0.75, 0.50, 0]"
    torch.testing.assert_close(flow_sigmas(4), torch.tensor([1.0, 0.90, 0.75, 0.50, 0.0]), atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        flow_sigmas(0)


def test_uniform_sigmas() -> None:
    sig = uniform_sigmas(4, shift=3.0)
    torch.testing.assert_close(sig, torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))
    sig1 = uniform_sigmas(8, shift=1.0, dtype=torch.float64)
    torch.testing.assert_close(sig1, torch.linspace(1, 0, 9, dtype=torch.float64))
    assert float(sig[0]) == 1.0 and float(sig[-1]) == 0.0


def test_sample_logit_normal() -> None:
    s = sample_logit_normal(100_000, generator=_gen(4))
    assert s.shape == (100_000,) and bool(((s > 0) & (s < 1)).all())
    assert float(s.median()) == pytest.approx(0.5, abs=0.01)
    torch.testing.assert_close(s, sample_logit_normal(100_000, generator=_gen(4)))
    shifted = sample_logit_normal(100_000, mean=1.0, std=0.5, generator=_gen(5))
    assert float(shifted.median()) == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)
    logit = torch.log(shifted / (1 - shifted))
    assert float(logit.std()) == pytest.approx(0.5, rel=0.02)
