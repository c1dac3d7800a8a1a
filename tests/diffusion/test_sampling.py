"""Tests for tdmr1.diffusion.sampling: Euler (= DDIM eta 0) and DPM-Solver++ trajectories, CFG wrappers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from tdmr1.diffusion.flow import add_noise, eps_from_velocity, flow_sigmas, uniform_sigmas, x0_from_velocity
from tdmr1.diffusion.sampling import Trajectory, sample

DIM = 8


def _toy_field(dtype: torch.dtype = torch.float64):
    """A fixed nonlinear velocity field v(x, s) = tanh(x W) (1 + s^2) + s x."""
    w = torch.randn(DIM, DIM, generator=torch.Generator().manual_seed(123), dtype=dtype) / math.sqrt(DIM)

    def fn(x: Tensor, s: Tensor) -> Tensor:
        assert s.shape == (x.shape[0],)
        s_ = s.to(x.dtype)[:, None]
        return torch.tanh(x @ w.to(x.dtype)) * (1 + s_**2) + s_ * x

    return fn


def _gaussian_field(mu: float, sigma0: float):
    """Exact v*(x, s) = E[eps - x0 | x_s] for x0 ~ N(mu, sigma0^2), x_s = (1-s) x0 + s eps."""

    def fn(x: Tensor, s: Tensor) -> Tensor:
        s_ = s.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        var = (1 - s_) ** 2 * sigma0**2 + s_**2
        r = x - (1 - s_) * mu
        e_eps = s_ / var * r
        e_x0 = mu + (1 - s_) * sigma0**2 / var * r
        return e_eps - e_x0

    return fn


def _noise(n: int, seed: int = 0, dtype: torch.dtype = torch.float64, shape: tuple[int, ...] = (DIM,)) -> Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _diffusers_states(fn, noise: Tensor, num_steps: int) -> Tensor:
    from diffusers import DPMSolverMultistepScheduler

    sched = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0)
    sched.set_timesteps(num_steps)
    x = noise
    states = [x]
    for i, t in enumerate(sched.timesteps):
        s = sched.sigmas[i].to(noise.dtype).expand(noise.shape[0])
        x = sched.step(fn(x, s), t, x).prev_sample
        states.append(x)
    return torch.stack(states)


# ---------------------------------------------------------------- DPM-Solver++ vs diffusers


@pytest.mark.parametrize("num_steps", [4, 10])
def test_dpm_matches_diffusers_step_for_step(num_steps: int) -> None:
    fn = _toy_field()
    noise = _noise(16, seed=num_steps)
    ref = _diffusers_states(fn, noise, num_steps)
    traj = sample(fn, noise, flow_sigmas(num_steps), solver="dpm")
    assert traj.states.shape == ref.shape == (num_steps + 1, 16, DIM)
    torch.testing.assert_close(traj.states, ref, atol=1e-5, rtol=0)
    # the match is not a coincidence of the field: plain Euler on the same levels is clearly different
    euler = sample(fn, noise, flow_sigmas(num_steps), solver="euler")
    assert float((euler.final - ref[-1]).abs().max()) > 1e-3


def test_dpm_matches_diffusers_float32_images() -> None:
    fn_flat = _toy_field(torch.float32)

    def fn(x: Tensor, s: Tensor) -> Tensor:  # image-shaped states [N, 2, 2, 2]
        return fn_flat(x.reshape(x.shape[0], DIM), s).reshape(x.shape)

    noise = _noise(4, seed=7, dtype=torch.float32, shape=(2, 2, 2))
    ref = _diffusers_states(fn, noise, 4)
    traj = sample(fn, noise, flow_sigmas(4), solver="dpm")
    assert traj.states.dtype == torch.float32
    torch.testing.assert_close(traj.states, ref, atol=1e-5, rtol=0)


def test_dpm_low_step_counts_are_euler_and_sigma_one_is_finite() -> None:
    fn = _toy_field()
    noise = _noise(8, seed=3)
    for k in (1, 2):  # diffusers' defaults: first and last steps are first order == Euler on flow levels
        sig = flow_sigmas(k)
        dpm, euler = sample(fn, noise, sig, "dpm"), sample(fn, noise, sig, "euler")
        torch.testing.assert_close(dpm.states, euler.states)
    traj = sample(fn, noise, uniform_sigmas(4), "dpm")  # starts at exactly s = 1 (log-SNR -inf)
    assert bool(torch.isfinite(traj.states).all())


# ---------------------------------------------------------------- Euler


def test_euler_equals_ddim_eta0() -> None:
    fn = _toy_field()
    noise = _noise(8, seed=4)
    traj = sample(fn, noise, flow_sigmas(4), solver="euler")
    sig = traj.sigmas
    for k in range(4):
        s = sig[k].expand(8)
        v = fn(traj.states[k], s)
        x0_hat = x0_from_velocity(traj.states[k], v, s)
        eps_hat = eps_from_velocity(traj.states[k], v, s)
        torch.testing.assert_close(traj.x0_preds[k], x0_hat)
        # DDIM, eta = 0: re-noise the x0 prediction to the next level with the model's own eps_hat
        torch.testing.assert_close(traj.states[k + 1], add_noise(x0_hat, eps_hat, float(sig[k + 1])))
    # last level is 0, so the final sample is the last x0 prediction
    torch.testing.assert_close(traj.final, traj.x0_preds[-1])


@pytest.mark.parametrize("solver,num_steps", [("euler", 200), ("dpm", 50)])
def test_sampler_reaches_gaussian_marginals(solver: str, num_steps: int) -> None:
    # many steps on the unshifted grid so that the discretisation error (Euler ~0.6% here) stays well
    # inside the tolerance; few-step samplers ending in an x0 prediction shrink the variance.
    mu, sigma0 = 2.0, 0.5
    fn = _gaussian_field(mu, sigma0)
    n = 100_000
    noise = _noise(n, seed=5, shape=(2,))
    sigmas = uniform_sigmas(num_steps, shift=1.0, dtype=torch.float64)
    traj = sample(fn, noise, sigmas, solver=solver)
    for k in range(num_steps + 1):
        s = float(sigmas[k])
        want_mean = (1 - s) * mu
        want_std = math.sqrt((1 - s) ** 2 * sigma0**2 + s**2)
        xk = traj.states[k]
        assert float(xk.mean()) == pytest.approx(want_mean, abs=0.01 + 0.01 * want_std), (k, s)
        assert float(xk.std()) == pytest.approx(want_std, rel=0.015), (k, s)
    assert float(traj.final.mean()) == pytest.approx(mu, abs=0.01)
    assert float(traj.final.std()) == pytest.approx(sigma0, rel=0.015)


def test_same_noise_same_trajectory_and_shapes() -> None:
    fn = _toy_field()
    for solver in ("euler", "dpm"):
        noise = _noise(6, seed=11)
        a = sample(fn, noise, flow_sigmas(4), solver=solver)
        b = sample(fn, _noise(6, seed=11), flow_sigmas(4), solver=solver)
        assert isinstance(a, Trajectory)
        assert torch.equal(a.states, b.states) and torch.equal(a.x0_preds, b.x0_preds)
        assert a.states.shape == (5, 6, DIM) and a.sigmas.shape == (5,) and a.x0_preds.shape == (4, 6, DIM)
        assert a.num_steps == 4
        assert torch.equal(a.states[0], noise)
        assert torch.equal(a.final, a.states[-1])
        torch.testing.assert_close(a.sigmas, flow_sigmas(4).double())
        c = sample(fn, _noise(6, seed=12), flow_sigmas(4), solver=solver)
        assert not torch.equal(a.final, c.final)


def test_sample_validates_inputs() -> None:
    fn = _toy_field()
    noise = _noise(2)
    with pytest.raises(ValueError, match="unknown solver"):
        sample(fn, noise, flow_sigmas(4), solver="heun")
    with pytest.raises(ValueError, match="decreasing"):
        sample(fn, noise, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="decreasing"):
        sample(fn, noise, [1.0, 0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="at least 2"):
        sample(fn, noise, [1.0])
    with pytest.raises(ValueError, match="1-D"):
        sample(fn, noise, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample(fn, noise, [1.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="finite"):
        sample(fn, noise, [float("nan"), 0.0])
    with pytest.raises(ValueError, match="velocity_fn returned shape"):
        sample(lambda x, s: x[:, :2], noise, flow_sigmas(2))
