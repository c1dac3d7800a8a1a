"""One iteration's data: m x G images on the student's deterministic K-step path, their black-box rewards and
group advantages (this process's rows; every process draws the whole batch and keeps its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from tdmr1.diffusion.sampling import Trajectory
from tdmr1.errors import RewardError
from tdmr1.models.registry import images_of
from tdmr1.r1.config import RLConfig
from tdmr1.r1.losses import group_advantages
from tdmr1.reward_protocol import Reward
from tdmr1.rewards.composite import reward_parts
from tdmr1.rewards.guard import call_reward
from tdmr1.tdm.system import FewStepSystem, Text
from tdmr1.training.distributed import BatchLayout, any_rank, average_stats


@dataclass
class Rollout:
    """One iteration's data: trajectories of m x G images, their rewards and advantages."""

    states: torch.Tensor  # [K+1, N, C, H, W]
    cond: tuple[torch.Tensor, torch.Tensor]
    group: torch.Tensor  # [N] prompt-group id
    rewards: torch.Tensor  # [N]
    adv: torch.Tensor  # [N]
    correct: float
    #: [K, N, C, H, W] the generator's data prediction at each state, from the rollout itself (the fake
    #: update reuses it instead of running the unchanged generator again); None in replayed batches
    x0_preds: torch.Tensor | None = None
    #: the tag of each prompt group (group id order; whole batch), for per-tag logs
    tags: tuple[str, ...] = ()

    def _rows(self, take: Callable[..., torch.Tensor]) -> Rollout:
        """The batch with ``take(tensor, dim=...)`` applied to every per-image tensor (images are dim 1 of
        the stacked states and predictions, dim 0 elsewhere)."""
        return Rollout(
            take(self.states, dim=1),
            (take(self.cond[0]), take(self.cond[1])),
            *(take(t) for t in (self.group, self.rewards, self.adv)),
            self.correct,
            None if self.x0_preds is None else take(self.x0_preds, dim=1),
            self.tags,
        )

    def gathered(self, layout: BatchLayout) -> Rollout:
        """The whole batch from every process's rows (identity for one process)."""
        return self._rows(layout.gather_rows)

    def mine(self, layout: BatchLayout) -> Rollout:
        """This process's rows of a whole batch (identity for one process)."""
        return self._rows(layout.mine)

    def without_predictions(self) -> Rollout:
        """The same batch without ``x0_preds`` (what the replay buffer keeps: half the memory)."""
        return replace(self, x0_preds=None)


def chunked_rollout(system: FewStepSystem, cond: Text, noise: torch.Tensor, rows: int) -> Trajectory:
    """``system.rollout`` from ``noise`` in chunks of at most ``rows`` images (a micro-batch a forward); the
    noise is drawn before, so the chunks change no draw."""
    parts = [
        system.rollout((cond[0][i : i + rows], cond[1][i : i + rows]), noise[i : i + rows])
        for i in range(0, len(noise), rows)
    ]
    if len(parts) == 1:
        return parts[0]
    states, x0_preds = (torch.cat([getattr(p, key) for p in parts], dim=1) for key in ("states", "x0_preds"))
    return Trajectory(states, parts[0].sigmas, x0_preds)


def roll_out(
    system: FewStepSystem,
    reward: Reward,
    picks: list[dict[str, Any]],
    cfg: RLConfig,
    layout: BatchLayout,
    gen: torch.Generator,
    step: int,
    with_predictions: bool = True,
) -> tuple[Rollout, dict[str, float]]:
    """(this process's rows of the batch, the reward's parts ``{"reward/<part>": mean}``) for the prompt
    groups ``picks``: the whole batch's noise is drawn on every process, rewards gathered before the
    advantages, which are computed over the whole batch."""
    metadata = [md for md in picks for _ in range(cfg.group_size)]
    metadata = [metadata[i] for i in layout.rows().tolist()]
    prompts = [md["prompt"] for md in metadata]
    groups = torch.arange(cfg.prompts_per_iteration, device=system.device).repeat_interleave(cfg.group_size)
    cond = system.encode(prompts)
    noise = layout.mine(system.randn(layout.images, generator=gen))
    traj = chunked_rollout(system, cond, noise, layout.forward_rows)
    if hasattr(reward, "set_iteration"):
        reward.set_iteration(step)  # likes: label rows carry the trainer's iteration
    timeout = None if getattr(reward, "interactive", False) else cfg.reward_timeout_s  # a person: no timeout
    out, failure = None, None
    try:
        out = call_reward(reward, images_of(system.model, traj.final), prompts, metadata, timeout)
    except RewardError as exc:
        failure = exc
    if any_rank(failure is not None):  # every process stops or skips the batch together
        raise failure or RewardError("the reward failed on another process")
    assert out is not None
    parts = average_stats(reward_parts(out.info))  # {"reward/<part>": mean} of a weighted sum
    rewards = torch.from_numpy(out.scores).float().to(system.device)
    adv = group_advantages(layout.gather_rows(rewards), groups, cfg.adv_eps, cfg.adv_clip)
    correct = float(np.mean(out.info["correct"])) if "correct" in out.info else float("nan")
    correct = average_stats({"correct": correct})["correct"]
    tags = tuple(md.get("tag", "untagged") for md in picks)
    x0_preds = traj.x0_preds if with_predictions else None
    ro = Rollout(traj.states, cond, layout.mine(groups), rewards, layout.mine(adv), correct, x0_preds, tags)
    return ro, parts
