"""The ShapesEval climb's trainer parts: the tag-balanced prompt stream and its per-tag logs, the explicit
pixel surrogate, the surrogate's warm-up and extra rollouts, and the reward direction's level band."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import Brightness, rl_cfg
from tdmr1.errors import ConfigError
from tdmr1.r1.config import reward_queries
from tdmr1.r1.draws import reward_point
from tdmr1.r1.losses import explicit_regression_loss
from tdmr1.r1.prompt_stream import PromptStream, tag_stats
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.worlds.shapes.prompts import training_prompts

PIXELS = ["surrogate=explicit", "explicit_input=pixels", "head_width=8", "t_min_surrogate=0.05", "t_max_surrogate=0.6"]


def test_balanced_stream_gives_every_tag_an_equal_share_of_shapes_prompts():
    pool = training_prompts()
    counts = {}
    for md in PromptStream(pool).draw(np.random.default_rng(0), 6000):
        counts[md["tag"]] = counts.get(md["tag"], 0) + 1
    assert len(counts) == 6 and all(abs(c / 6000 - 1 / 6) < 0.02 for c in counts.values()), counts
    pooled = [md["tag"] for md in PromptStream(pool, "pool").draw(np.random.default_rng(0), 6000)]
    assert pooled.count("color_attr") / 6000 > 0.75  # the whole pool is mostly color_attr: why balanced is default


def test_tag_weights_choose_the_stream_and_unknown_tags_are_refused():
    pool = training_prompts()
    drawn = PromptStream(pool, tag_weights={"counting": 3, "colors": 1}).draw(np.random.default_rng(1), 4000)
    tags = [md["tag"] for md in drawn]
    assert set(tags) == {"counting", "colors"} and 0.70 < tags.count("counting") / 4000 < 0.80
    with pytest.raises(ConfigError, match="lacks"):
        PromptStream(pool, tag_weights={"dogs": 1.0})
    with pytest.raises(ConfigError, match="weight 0"):
        PromptStream(pool, tag_weights={"counting": 0.0})


def test_tag_stats_break_a_batch_down_by_tag():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    adv = torch.tensor([1.0, -1.0, 0.0, 0.0])
    out = tag_stats(("counting", "colors"), rewards, adv)
    assert out == {
        "tag_share/counting": 0.5,
        "tag_reward/counting": 0.5,
        "tag_abs_adv/counting": 1.0,
        "tag_share/colors": 0.5,
        "tag_reward/colors": 1.0,
        "tag_abs_adv/colors": 0.0,
    }


def test_reward_point_stays_in_its_band_and_reads_noisy_steps_from_x0():
    gen = torch.Generator().manual_seed(0)
    x_n, x0 = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    s_next = torch.tensor([0.9, 0.9, 0.5, 0.5, 0.0, 0.0])
    group = torch.tensor([0, 0, 1, 1, 2, 2])
    x_r, tau = reward_point(x_n, s_next, group, 3.0, 0.05, gen, t_max=0.6, x0=x0)
    assert (tau >= 0.05 - 1e-6).all() and (tau <= 0.6 + 1e-6).all()
    assert (tau[2:4] >= 0.5).all()  # a state inside the band is only noised further
    above = s_next > 0.6
    source, level = torch.where(above.view(-1, 1, 1, 1), x0, x_n), torch.where(above, 0.0, s_next)
    again, _ = reward_point(source, level, group, 3.0, 0.05, torch.Generator().manual_seed(0), t_max=0.6)
    torch.testing.assert_close(x_r, again)  # rows above the band were bridged from their x0 at level 0
    _, tau_full = reward_point(x_n, s_next, group, 3.0, 0.05, torch.Generator().manual_seed(0))
    assert (tau_full[:2] >= 0.9 - 1e-6).all()  # without a band (authors' default) the level stays above s_next


def test_regression_loss_is_zero_exactly_when_r_matches_the_centred_advantages():
    group = torch.tensor([0, 0, 1, 1])
    adv = torch.tensor([0.5, -0.5, 1.0, -1.0])
    weight = torch.ones(4)
    assert explicit_regression_loss(adv + torch.tensor([3.0, 3.0, -2.0, -2.0]), adv, group, weight) == 0.0
    assert explicit_regression_loss(-adv, adv, group, weight) > 1.0


def test_pixel_surrogate_runs_no_backbone_forward(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, "explicit_loss=mse"), tmp_path, quiet=True)
    tr.reward = Brightness()  # a reward that differs within every group
    ro = tr.rollout()
    calls = []
    original = tr.system.velocity
    tr.system.velocity = lambda *a, **k: calls.append(a[0]) or original(*a, **k)
    tr.update.surrogate_step(ro)
    assert calls == []
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.surrogate.parameters())


def test_warm_up_trains_the_surrogate_once_and_resume_skips_it(tiny_student, tmp_path):
    extra = [*PIXELS, "surrogate_warmup=3", "surrogate_warmup_steps=4", "surrogate_replay=4", "iterations=1"]
    tr = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path / "a", quiet=True)
    before = [p.detach().clone() for p in tr.surrogate.parameters()]
    tr.run()
    assert tr.warmup_state.done and len(tr.replay) == 4  # 3 warm-up batches + the iteration's fresh one
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.surrogate.parameters(), strict=True))
    lines = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert "warmup/sur_rank" in lines
    again = TDMR1Trainer(rl_cfg(tiny_student, *extra[:-1], "iterations=2"), tmp_path / "a", quiet=True)
    calls = []
    again.warm_up_surrogate = lambda log: calls.append(1) or {}
    again.run()
    assert calls == [] and again.step == 2


def test_extra_surrogate_rollouts_fill_the_replay_and_count_as_reward_queries(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, "surrogate_rollouts=2", "surrogate_replay=6"), tmp_path, quiet=True)
    stats = tr.iteration()
    assert len(tr.replay) == 3 and all(ro.x0_preds is None for ro in tr.replay)
    assert stats["reward_queries"] == 3 * 2 * 2 == reward_queries(tr.cfg, 1)
    assert {"tag_share/" + t for t in tr.replay[-1].tags} <= set(stats)  # the fresh batch, stored last


def test_sur_rank_is_broken_down_by_tag(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, "sur_rank_every=1"), tmp_path, quiet=True)
    stats = tr.iteration()
    ro_tags = {k.split("/", 1)[1] for k in stats if k.startswith("tag_share/")}
    assert {f"sur_rank/{t}" for t in ro_tags} <= set(stats)


def test_config_refuses_inconsistent_stream_and_warm_up_settings(tiny_student):
    with pytest.raises(ConfigError, match="surrogate_rollouts"):
        rl_cfg(tiny_student, "surrogate_rollouts=2", "surrogate_replay=2")
    with pytest.raises(ConfigError, match="surrogate_warmup"):
        rl_cfg(tiny_student, "surrogate_warmup=4", "surrogate_replay=2")
    with pytest.raises(ConfigError, match="t_max_reward"):
        rl_cfg(tiny_student, "t_max_reward=0.1", "t_min_reward=0.2")
    with pytest.raises(ConfigError, match="tag_weights"):
        rl_cfg(tiny_student, "tag_weights={counting: -1}")
