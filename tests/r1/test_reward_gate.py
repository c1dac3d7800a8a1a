"""The reward gate: the generator reads the reward direction only on tags the surrogate is measured to rank."""

from __future__ import annotations

import pytest
import torch

from helpers import Brightness, rl_cfg
from tdmr1.errors import ConfigError
from tdmr1.r1.gate import MIN_GROUPS, RewardGate
from tdmr1.r1.trainer import TDMR1Trainer

PIXELS = ["surrogate=explicit", "explicit_input=pixels", "head_width=8"]


def test_gate_opens_only_on_tags_measured_to_rank_on_enough_groups():
    gate = RewardGate(0.2)
    tags = ("counting",) * 3 + ("colors",)
    gate.observe({"sur_rank/counting": 0.6, "sur_rank/colors": 0.9}, tags)
    assert not gate.is_open("counting")  # 3 groups < MIN_GROUPS
    gate.observe({"sur_rank/counting": 0.5, "sur_rank/colors": -0.4}, tags)
    assert gate.is_open("counting") and not gate.is_open("colors") and not gate.is_open("position")
    lucky = RewardGate(0.2)
    lucky.observe({"sur_rank/position": 0.4}, ("position",) * MIN_GROUPS)  # 0.4 on 4 groups: not sure enough
    assert not lucky.is_open("position")
    lucky.observe({"sur_rank/position": 0.5}, ("position",) * 16)
    assert lucky.is_open("position")
    assert gate.rank["colors"] == pytest.approx((0.8 * 0.9 - 0.4) / 1.8)  # the older value decays
    mask = gate.row_mask(tags, torch.tensor([0, 0, 3, 3, 1]))
    assert mask.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    for _ in range(MIN_GROUPS):  # counting stops ranking: the gate closes again
        gate.observe({"sur_rank/counting": -0.3}, ("counting",))
    assert not gate.is_open("counting")
    assert RewardGate(None).row_mask(tags, torch.tensor([3])).tolist() == [1.0]  # no gate: open everywhere


def test_closed_gate_leaves_only_the_kl_and_cfg_terms(tiny_student, tmp_path):
    """With every tag's gate closed the generator's reward loss is 0 and its gradient equals that of a run
    with w_reward = 0; opened, the reward term is back."""
    grads = {}
    for name, extra in {
        "closed": ["reward_gate=0.5"],
        "no_reward": ["w_reward=0"],
        "open": ["reward_gate=-1.0"],
    }.items():
        tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, "sur_rank_every=1", *extra), tmp_path / name, quiet=True)
        tr.reward = Brightness()
        if name == "open":
            for tag in tr.stream.tags:
                tr.gate.observe({f"sur_rank/{tag}": 0.0}, (tag,) * MIN_GROUPS)
        ro = tr.rollout()
        tr.update.surrogate_step(ro)  # the head starts at a zero output layer: give it a gradient to read
        tr.opt["surrogate"].step()
        stats = tr.update.generator(ro)
        grads[name] = torch.cat([p.grad.flatten() for p in tr.roles.parameters("generator")])
        if name == "closed":
            assert stats["loss_reward"] == 0.0
        if name == "open":
            assert stats["loss_reward"] > 0.0
    assert torch.allclose(grads["closed"], grads["no_reward"], atol=1e-7)
    assert not torch.allclose(grads["open"], grads["no_reward"], atol=1e-7)


def test_gate_is_measured_logged_and_resumed(tiny_student, tmp_path):
    extra = [*PIXELS, "sur_rank_every=1", "reward_gate=0.1", "iterations=2"]
    tr = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path, quiet=True)
    tr.reward = Brightness()
    tr.run()
    lines = (tmp_path / "metrics.jsonl").read_text()
    assert "gate_rank/" in lines and '"gate/' in lines
    again = TDMR1Trainer(rl_cfg(tiny_student, *extra), tmp_path, quiet=True)
    assert again.resume() and again.gate.state_dict() == tr.gate.state_dict() != {"rank": {}, "groups": {}}


def test_gate_needs_rank_measurements(tiny_student):
    with pytest.raises(ConfigError, match="reward_gate"):
        rl_cfg(tiny_student, "reward_gate=0.2", "sur_rank_every=0")
