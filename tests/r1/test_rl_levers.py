"""TDM-R1 levers and fixes: the surrogate's tau margin, micro-step scaling, the ranking diagnostic by tau
band, replay, per-role LoRA, the explicit surrogate variant, exact resume of every logged number."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import Brightness, mean_brightness, rl_cfg
from tdmr1.diffusion.flow import inverse_time_shift, uniform_sigmas
from tdmr1.errors import ConfigError
from tdmr1.r1.config import RLConfig
from tdmr1.r1.diagnostics import pearson
from tdmr1.r1.draws import TAU_MARGIN, draw_surrogate_points
from tdmr1.r1.losses import explicit_reward_direction, explicit_surrogate_loss
from tdmr1.r1.trainer import TDMR1Trainer


def test_surrogate_levels_keep_the_authors_margin_above_each_state():
    """tau stays >= 20/1000 (pre-shift) above s_k: with no margin b -> 0 and the target v* blows up."""
    sigmas, shift = uniform_sigmas(4, shift=3.0), 3.0
    group = torch.arange(4000)
    gen = torch.Generator().manual_seed(0)
    k, tau = draw_surrogate_points(sigmas, shift, group, gen, t_min=0.0, t_max=1.0)
    gap = inverse_time_shift(tau, shift) - inverse_time_shift(sigmas[k], shift)
    assert gap.min() >= TAU_MARGIN - 1e-6, gap.min()
    assert set(k.unique().tolist()) == {1, 2, 3, 4}
    assert RLConfig().tau_margin == TAU_MARGIN == 0.02


def test_surrogate_levels_respect_band_and_clean_share():
    sigmas, group = uniform_sigmas(4, shift=3.0), torch.arange(2000).repeat_interleave(2)
    gen = torch.Generator().manual_seed(1)
    k, tau = draw_surrogate_points(sigmas, 3.0, group, gen, t_min=0.7, t_max=0.9, clean_share=0.5)
    clean = k == 4
    assert 0.55 < clean.float().mean() < 0.75  # 0.5 forced + 0.5 x P(k=4) = 0.7
    assert tau[clean].min() >= 0.7 - 1e-6 and tau[clean].max() <= 0.9 + 1e-6
    assert (tau >= sigmas[k]).all()
    assert torch.equal(k[0::2], k[1::2]) and torch.equal(tau[0::2], tau[1::2])  # shared within a group


def test_ranking_is_scale_free_and_within_prompts():
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    margin = torch.tensor([2.0, 1.0, -7.75, -8.25])
    group = torch.tensor([0, 0, 1, 1])
    assert pearson(adv, margin, group) == pytest.approx(1.0)
    assert pearson(adv, 1000 * margin, group) == pytest.approx(pearson(adv, margin, group))


def test_more_train_steps_than_states_does_not_shrink_gradients(tiny_student, tmp_path):
    """Only min(steps, K) micro-steps run: asking for 8 of K = 4 must train exactly like asking for 4."""
    stats = []
    for steps in (4, 8):
        torch.manual_seed(0)
        tr = TDMR1Trainer(rl_cfg(tiny_student, f"train_steps_per_iteration={steps}"), tmp_path / str(steps), quiet=True)
        stats.append(tr.iteration())
    for key in ("loss_fake", "grad_fake", "loss_gen", "grad_gen"):
        assert stats[0][key] == pytest.approx(stats[1][key], rel=1e-5), key


def test_sur_rank_is_logged_per_tau_band_and_starts_at_zero(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, "sur_rank_every=1", "sur_rank_bands=[0.3, 0.7, 1.0]"), tmp_path, quiet=True)
    stats = tr.iteration()
    assert stats["sur_rank"] == 0.0  # surrogate == base before its first step
    assert {"sur_rank_tau_0.30_0.70", "sur_rank_tau_0.70_1.00"} <= set(stats)


def test_config_rejects_bad_levers(tiny_student):
    with pytest.raises(ConfigError, match="t_max_surrogate"):
        rl_cfg(tiny_student, "t_min_surrogate=0.8", "t_max_surrogate=0.7")
    with pytest.raises(ConfigError, match="sur_rank_bands"):
        rl_cfg(tiny_student, "sur_rank_bands=[0.5, 0.3]")
    with pytest.raises(ConfigError, match="surrogate_steps"):
        rl_cfg(tiny_student, "surrogate_steps=0")


def test_replay_runs_extra_surrogate_steps_on_stored_rollouts(tiny_student, tmp_path):
    """Of an iteration's 3 surrogate steps the first trains on the fresh batch, the other two on batches of
    earlier iterations drawn from the buffer (once there are any); the buffer keeps the last 2 batches."""
    tr = TDMR1Trainer(rl_cfg(tiny_student, "surrogate_steps=3", "surrogate_replay=2"), tmp_path, quiet=True)
    fresh: list[torch.Tensor] = []  # each iteration's rollout states
    fed: list[torch.Tensor] = []  # the states of every batch a surrogate step trained on
    rollout, surrogate_step = tr.rollout, tr.update.surrogate_step

    def recorded_rollout(*args, **kwargs):
        ro = rollout(*args, **kwargs)
        fresh.append(ro.states)
        return ro

    def recorded_step(ro):
        fed.append(ro.states)
        return surrogate_step(ro)

    tr.rollout, tr.update.surrogate_step = recorded_rollout, recorded_step  # type: ignore[method-assign]
    for _ in range(3):
        tr.iteration()

    def iteration_of(states: torch.Tensor) -> int:
        (i,) = [i for i, f in enumerate(fresh) if torch.equal(f, states)]
        return i

    assert len(fresh) == 3
    steps = [iteration_of(s) for s in fed]
    assert steps[:3] == [0, 0, 0]  # an empty buffer: every step on the fresh batch
    for i in (1, 2):
        first, *replayed = steps[3 * i : 3 * i + 3]
        assert first == i and all(j < i for j in replayed), steps
    assert [iteration_of(ro.states) for ro in tr.replay] == [1, 2]


def test_surrogate_can_have_its_own_lora(tiny_student, tmp_path):
    """lora_surrogate gives the surrogate (and its lagging copy) an adapter of its own, rank 4 on to_q/to_k/to_v
    only, and that adapter is what the surrogate steps train."""
    tr = TDMR1Trainer(
        rl_cfg(tiny_student, "lora_surrogate.rank=4", "lora_surrogate.target_modules=[to_q, to_k, to_v]"),
        tmp_path,
        quiet=True,
    )
    n_gen = sum(p.numel() for p in tr.roles.parameters("generator"))
    n_sur = sum(p.numel() for p in tr.roles.parameters("surrogate"))
    assert n_sur != n_gen and n_sur == sum(p.numel() for p in tr.roles.parameters("surrogate_old"))
    before = {role: tr.roles.adapter_state(role) for role in ("generator", "surrogate")}
    assert all(k.split(".lora_")[0].rsplit(".", 1)[-1] in {"to_q", "to_k", "to_v"} for k in before["surrogate"])
    assert {v.shape[0] for k, v in before["surrogate"].items() if "lora_A" in k} == {4}
    tr.reward = Brightness()  # dense: advantages differ from 0 within every group, so the surrogate learns
    tr.iteration()
    for role, old in before.items():  # the surrogate's own adapter is the one its steps train
        new = tr.roles.adapter_state(role)
        assert any(not torch.equal(new[k], v) for k, v in old.items()), role


def test_explicit_loss_and_direction_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 2.0], requires_grad=True)
    adv, group, beta = torch.tensor([1.0, -1.0, 1.0, -1.0]), torch.tensor([0, 0, 1, 1]), 2.0
    loss = explicit_surrogate_loss(r, adv, group, beta)
    s = torch.tensor([beta * (1.0 - 0.0) / 2, beta * (0.0 - 2.0) / 2])
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(-s).mean().item())
    (grad,) = torch.autograd.grad(loss, r)
    assert grad[0] < 0 < grad[1]  # descending the loss raises the better image's reward
    g = torch.randn(3, 1, 4, 4)
    d = explicit_reward_direction(g, 0.05)
    assert torch.allclose(d.pow(2).flatten(1).mean(1).sqrt(), torch.full((3,), 0.05))
    assert (torch.sign(d) == torch.sign(g)).all()


def test_explicit_surrogate_learns_to_rank_and_lifts_a_learnable_reward(tiny_student, tmp_path):
    """The labelled explicit variant, end to end: its head ranks fresh batches and the generator climbs."""
    torch.manual_seed(0)
    cfg = rl_cfg(
        tiny_student,
        "surrogate=explicit",
        "prompts_per_iteration=4",
        "group_size=4",
        "minibatch_groups=4",
        "lr_generator=1e-3",
        "lr_head=1e-2",
        "w_cfg=0.0",
        "w_kl=0.0",
        "sur_rank_every=1",
        "sur_rank_bands=[]",
        "surrogate_steps=4",
        "surrogate_replay=4",
    )
    tr = TDMR1Trainer(cfg, tmp_path, quiet=True)
    tr.reward = Brightness()
    before = mean_brightness(tr)
    stats = [tr.iteration() for _ in range(6)]
    ranks = [s["sur_rank"] for s in stats]
    assert ranks[0] == 0.0 and np.mean(ranks[1:]) > 0.2, ranks
    assert mean_brightness(tr) > before + 0.01


@pytest.mark.parametrize("variant", ["implicit", "explicit"])
def test_kill_and_resume_logs_the_same_numbers(tiny_student, tmp_path, variant):
    """Every logged number of an interrupted-and-resumed run equals the uninterrupted run's."""
    extra = [f"surrogate={variant}", "sur_rank_every=1", "surrogate_steps=2", "surrogate_replay=2", "iterations=3"]
    straight = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path / "a", quiet=True)
    expected = [straight.iteration() for _ in range(3)]
    first = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path / "b", quiet=True)
    got = [first.iteration() for _ in range(2)]
    first.save()
    del first
    torch.manual_seed(123)  # a resumed process starts with a different global RNG
    resumed = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path / "b", quiet=True)
    assert resumed.resume() and resumed.step == 2
    got.append(resumed.iteration())
    for e, g in zip(expected, got, strict=True):
        assert e.keys() == g.keys()
        for key in e:
            assert (np.isnan(e[key]) and np.isnan(g[key])) or e[key] == g[key], key


def test_fake_update_reuses_the_rollouts_generator_step(tiny_student, tmp_path, monkeypatch):
    """The fake score trains on the rollout's own x0 predictions (the generator has not changed since the
    rollout): no generator forward, the same loss and gradients as running it again; replay keeps none."""
    tr = TDMR1Trainer(rl_cfg(tiny_student, "surrogate_steps=2", "surrogate_replay=2"), tmp_path, quiet=True)
    ro = tr.rollout()
    assert ro.x0_preds is not None and ro.x0_preds.shape == ro.states[1:].shape
    fake_params = [p for g in tr.opt["fake"].param_groups for p in g["params"]]
    results = []
    for batch in (ro.without_predictions(), ro):
        tr.gen.manual_seed(7)  # the same minibatch order and draws for both
        loss = tr.update.fake(batch)
        results.append((loss, [p.grad.clone() for p in fake_params]))
        tr.opt["fake"].zero_grad(set_to_none=True)
        if batch is not ro:  # from here on, running the generator again would be an error
            monkeypatch.setattr(tr.system, "generator_step", lambda *a, **k: pytest.fail("generator ran again"))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-7)
    tr.train_surrogate(ro)
    assert tr.replay[-1].x0_preds is None
