"""TDM-R1: losses by hand, surrogate target maths, a tiny iteration, exact resume, bad rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import Brightness, mean_brightness, rl_cfg
from tdmr1.diffusion.flow import bridge_coefficients
from tdmr1.errors import RewardError
from tdmr1.r1.diagnostics import pearson
from tdmr1.r1.losses import group_advantages, surrogate_loss, surrogate_target
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.reward_protocol import RewardOutput
from tdmr1.utils.io import METRICS_FILE, read_jsonl


def test_advantages_match_hand_computation():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    group = torch.tensor([0, 0, 1, 1, 2, 2])
    std = float(np.std([1.0, 0.0, 0.5, 0.5, 1.0, 1.0]))
    expected = torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0]) / (std + 1e-4)
    assert torch.allclose(group_advantages(r, group), expected)
    assert group_advantages(torch.tensor([100.0, 0.0]), torch.tensor([0, 0]), clip=5.0).abs().max() <= 5.0


def test_surrogate_loss_gradient_is_group_bradley_terry():
    torch.manual_seed(0)
    n, g, beta = 6, 3, 2.0
    group = torch.tensor([0, 0, 0, 1, 1, 1])
    adv = torch.randn(n)
    d_ref = torch.rand(n)
    d = torch.rand(n, requires_grad=True)
    loss, _ = surrogate_loss(d, d_ref, adv, group, beta)
    (grad,) = torch.autograd.grad(loss, d)
    d2 = d.detach().clone().requires_grad_(True)
    s = torch.stack([(beta / g) * (adv[group == k] * (d2[group == k] - d_ref[group == k])).sum() for k in (0, 1)])
    (grad_bt,) = torch.autograd.grad(F.softplus(s).sum(), d2)
    assert torch.allclose(grad, grad_bt * g / (beta * n), atol=1e-7)


def test_surrogate_target_is_flow_target_when_clean_and_bridge_velocity_otherwise():
    torch.manual_seed(0)
    x0, xi = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    tau = torch.tensor([0.3, 0.6, 0.9, 0.99])
    x_tau, v = surrogate_target(x0, torch.zeros(4), xi, tau)
    assert torch.allclose(v, xi - x0, atol=1e-5)
    assert torch.allclose(x_tau, (1 - tau.view(-1, 1, 1, 1)) * x0 + tau.view(-1, 1, 1, 1) * xi, atol=1e-6)
    s_k = torch.tensor([0.5, 0.75, 0.5, 0.9])
    tau = torch.tensor([0.6, 0.8, 0.95, 0.95])
    x_tau, v = surrogate_target(x0, s_k, xi, tau)
    _, b = bridge_coefficients(s_k, tau)
    score = -xi / b.view(-1, 1, 1, 1)  # conditional score of the bridge kernel p(x_tau | x_k)
    t = tau.view(-1, 1, 1, 1)
    assert torch.allclose(v, (-t * score - x_tau) / (1 - t), atol=1e-4)  # velocity = (-tau score - x)/(1-tau)


def test_fresh_surrogate_gives_zero_reward_direction(tiny_student, tmp_path):
    trainer = TDMR1Trainer(rl_cfg(tiny_student, "surrogate_cfg=1.0"), tmp_path, quiet=True)
    ro = trainer.rollout()
    stats = trainer.update.generator(ro)
    assert stats["reward_dir_norm"] == 0.0


def test_one_iteration_and_exact_resume(tiny_student, tmp_path):
    cfg = rl_cfg(tiny_student, "iterations=2")
    a = TDMR1Trainer(cfg, tmp_path / "a", quiet=True)
    a.run()
    b = TDMR1Trainer(rl_cfg(tiny_student, "iterations=1"), tmp_path / "b", quiet=True)
    b.run()
    c = TDMR1Trainer(cfg, tmp_path / "b", quiet=True)  # resumes at iteration 1, runs iteration 2
    c.run()
    sa, sc = a.model.denoiser.state_dict(), c.model.denoiser.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)
    assert (tmp_path / "a" / "reward_curve.png").is_file()
    assert (tmp_path / "a" / "samples" / "before.png").is_file() and (
        tmp_path / "a" / "samples" / "after.png"
    ).is_file()


class _BadReward:
    name = "bad"

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, images, prompts, metadata):
        if self.mode == "raise":
            raise ValueError("detector crashed")
        if self.mode == "sleep":
            import time

            time.sleep(2)
        scores = np.full(len(images), np.nan if self.mode == "nan" else 0.5, dtype=np.float32)
        return RewardOutput(scores)


@pytest.mark.parametrize(
    "mode, message", [("raise", "raised ValueError: detector crashed"), ("nan", "non-finite"), ("sleep", "timed out")]
)
def test_bad_reward_stops_cleanly_with_checkpoint_intact(tiny_student, tmp_path, mode, message):
    trainer = TDMR1Trainer(rl_cfg(tiny_student, "iterations=3", "reward_timeout_s=0.5"), tmp_path, quiet=True)
    trainer.iteration()
    trainer.save()
    before = (tmp_path / "state.pt").read_bytes()
    trainer.reward = _BadReward(mode)
    with pytest.raises(RewardError, match=message):
        trainer.run()
    assert (tmp_path / "state.pt").read_bytes() == before


class _FailsFirst:
    """NaN scores for its first ``n`` batches, then 0.5 for every image."""

    name = "fails_first"

    def __init__(self, n: int):
        self.left = n

    def __call__(self, images, prompts, metadata):
        bad, self.left = self.left > 0, max(self.left - 1, 0)
        return RewardOutput(np.full(len(images), np.nan if bad else 0.5, dtype=np.float32))


def test_bad_reward_batches_can_be_skipped(tiny_student, tmp_path):
    """A batch whose reward fails is dropped (no iteration counted or logged) and the run goes on to finish
    its iterations on good batches; max_skipped_batches failures in a row are still allowed."""
    cfg = rl_cfg(tiny_student, "iterations=1", "skip_bad_reward_batches=true", "max_skipped_batches=2", "log_every=1")
    trainer = TDMR1Trainer(cfg, tmp_path, quiet=True)
    trainer.reward = _FailsFirst(2)
    trainer.run()
    assert trainer.step == 1 and trainer.reward.left == 0
    logged = [row for row in read_jsonl(tmp_path / METRICS_FILE) if "reward" in row]
    assert [(row["step"], row["reward"]) for row in logged] == [(1, 0.5)]  # the good batch only


def test_an_always_failing_reward_stops_after_the_skip_cap(tiny_student, tmp_path):
    cfg = rl_cfg(tiny_student, "iterations=100", "skip_bad_reward_batches=true", "max_skipped_batches=2")
    trainer = TDMR1Trainer(cfg, tmp_path, quiet=True)
    trainer.reward = _BadReward("nan")
    with pytest.raises(RewardError, match="3 reward batches failed in a row"):
        trainer.run()
    assert trainer.step == 0


def test_rl_climbs_a_learnable_black_box_reward(tiny_student, tmp_path):
    """End to end (rollout -> reward -> surrogate -> generator): a few iterations raise the reward on
    fixed seeds; a sign error anywhere in the surrogate or generator terms makes this fail."""
    torch.manual_seed(0)
    cfg = rl_cfg(
        tiny_student,
        "prompts_per_iteration=4",
        "group_size=4",
        "minibatch_groups=4",
        "lr_generator=1e-3",
        "lr_surrogate=3e-3",
        "surrogate_cfg=1.0",
        "w_cfg=0.0",
        "w_kl=0.0",
        "sur_rank_every=1",
        "prompt_stream=pool",  # brightness ignores the prompt: keep the prompt draws this test was tuned on
    )
    trainer = TDMR1Trainer(cfg, tmp_path, quiet=True)
    trainer.reward = Brightness()
    before = mean_brightness(trainer)
    stats = [trainer.iteration() for _ in range(6)]
    sur_rank = [s["sur_rank"] for s in stats]
    after = mean_brightness(trainer)
    assert after > before + 0.01, (before, after)
    # the diagnostic sees it too: a fresh batch's advantages agree with the surrogate's margin d_ref - d
    # (multi-draw, its own random draws, so training is unchanged by it)
    assert sur_rank[0] == 0.0 and np.mean(sur_rank[1:]) > 0.2, sur_rank


def test_sur_rank_ranks_within_prompts_only():
    """Per-prompt offsets of the margin (some prompts are easier to denoise) must not hide a perfect
    within-prompt ranking."""
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    margin = torch.tensor([5.1, 4.9, -4.9, -5.1])
    group = torch.tensor([0, 0, 1, 1])
    assert pearson(adv, margin, group) == pytest.approx(1.0)
    assert abs(pearson(adv, margin)) < 0.1
    assert pearson(adv, -margin, group) == pytest.approx(-1.0)
