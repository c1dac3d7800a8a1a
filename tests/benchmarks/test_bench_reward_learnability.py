"""benchmarks/reward_learnability.py: its learner ranks a reward it can see (the brightness control) on
held-out images, with either loss, so a low number on a world's reward is the reward's, not the learner's."""

from __future__ import annotations

import pytest
import torch

from bench_module import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("reward_learnability")


def _batches(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        level = torch.rand(64, 1, 1, 1, generator=gen) * 2 - 1  # each image its own brightness
        x = (level + 0.3 * torch.randn(64, 3, 16, 16, generator=gen)).clamp(-1, 1)
        out.append(
            {
                "x": x,
                "hidden": torch.randn(64, 4, 8, generator=gen),
                "mask": torch.ones(64, 4, dtype=torch.long),
                "group": torch.arange(8).repeat_interleave(8) + 8 * i,
                "tag": torch.arange(8).repeat_interleave(8) % 2,
                "rewards": torch.zeros(64),
                "adv": torch.zeros(64),
            }
        )
    return out


@pytest.mark.parametrize("kind", ["mse", "bt"])
def test_learner_ranks_the_brightness_control_on_heldout_images(bench, kind):
    train, held = bench.brightness_control(_batches(4, 0)), bench.brightness_control(_batches(2, 1))
    run = bench.train(train, held, kind, steps=40, lr=3e-3, seed=0, width=8, batch_images=64)
    assert run["steps"] == 40 and len(run["history"]) == 10
    assert run["history"][-1]["all"] > 0.8, run["history"]
    assert min(run["history"][-1][str(tag)] for tag in (0, 1)) > 0.7  # each tag ranked on its own rows


def test_learner_ranks_the_brightness_control_on_noisy_states(bench):
    train, held = bench.brightness_control(_batches(4, 0)), bench.brightness_control(_batches(2, 1))
    run = bench.train(train, held, "mse", steps=40, lr=3e-3, seed=0, width=8, tau_range=(0.05, 0.4), batch_images=64)
    assert run["history"][-1]["all"] > 0.6, run["history"]


def test_untrained_learner_does_not_rank(bench):
    held = bench.brightness_control(_batches(2, 1))
    run = bench.train(held, held, "mse", steps=1, lr=0.0, seed=0, width=8, batch_images=64, evals=1)
    assert run["history"][-1]["all"] == 0.0  # the head's output layer starts at zero: r is constant


def test_control_rewards_and_advantages_follow_brightness(bench):
    (b,) = bench.brightness_control(_batches(1, 2))
    torch.testing.assert_close(b["rewards"], b["x"].mean(dim=(1, 2, 3)))
    assert torch.allclose(b["adv"].view(8, 8).mean(1), torch.zeros(8), atol=1e-5)  # centred within each prompt


def test_table_averages_each_setting_over_its_seeds(bench):
    final = [{"all": 0.3, "counting": 0.6, "step": 9}, {"all": 0.5, "counting": 0.8, "step": 9}]
    results = {
        f"balanced-tau0-0-mse-4096-seed{s}": {"final_heldout": f, "best_heldout": 0.6} for s, f in enumerate(final)
    }
    results["mse-1024"] = {"epochs": 3}  # an older entry without seeds is left out
    lines = bench.table(results).splitlines()
    assert lines[0].startswith("| run | seeds |") and "counting" in lines[0] and len(lines) == 3
    assert "| balanced-tau0-0-mse-4096 | 2 |" in lines[2]
    assert "0.400 +- 0.141 | 0.600 +- 0.000" in lines[2] and "0.700 +- 0.141" in lines[2]


def _binding_batches(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """A reward only an order-aware learner can see: each prompt's two tokens say (content + position) "a
    first" or "b first", the same masked mean either way; the reward is 1 when the image's bright half is the
    left one for "a first", the right one for "b first"."""
    from tdmr1.r1.losses import group_advantages

    gen, eye, out = torch.Generator().manual_seed(seed), torch.eye(8), []
    for i in range(n):
        order = torch.randint(0, 2, (8,), generator=gen).repeat_interleave(8)  # per prompt
        side = torch.randint(0, 2, (64,), generator=gen)  # per image: left or right half bright
        cols = torch.arange(16)[None, :] >= 8
        bright = cols == side[:, None].bool()  # [64, 16]
        x = torch.where(bright[:, None, None, :], 1.0, -1.0).expand(64, 3, 16, 16).clone()
        x = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
        first = torch.where(order[:, None] == 0, eye[0], eye[1])
        second = torch.where(order[:, None] == 0, eye[1], eye[0])
        rewards, group = (side == order).float(), torch.arange(8).repeat_interleave(8) + 8 * i
        out.append(
            {
                "x": x,
                "hidden": torch.stack([first + eye[2], second + eye[3]], 1),
                "mask": torch.ones(64, 2, dtype=torch.long),
                "group": group,
                "tag": order,
                "rewards": rewards,
                "adv": group_advantages(rewards, group),
            }
        )
    return out


def test_attention_conditioning_ranks_a_binding_reward_the_masked_mean_cannot(bench):
    train, held = _binding_batches(6, 0), _binding_batches(2, 1)
    final = {}
    for prompt in ("mean", "attention"):
        run = bench.train(train, held, "mse", steps=40, lr=3e-3, seed=0, width=8, batch_images=64, prompt=prompt)
        final[prompt] = run["history"][-1]["all"]
    assert abs(final["mean"]) < 0.2 and final["attention"] > 0.8, final
