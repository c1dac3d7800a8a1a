"""The RL prompt stream: tag-balanced (a tag by weight, then a prompt of it) or uniform over the pool,
and the per-tag breakdowns of a batch (tag shares, rewards, advantages) that the trainer logs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tdmr1.errors import ConfigError
from tdmr1.geneval.layout import read_prompt_file
from tdmr1.r1.config import RLConfig
from tdmr1.worlds.base import World


class PromptStream:
    """Draws prompt metadata for the iteration's groups from a pool of tagged prompts."""

    def __init__(self, pool: list[dict], mode: str = "balanced", tag_weights: dict[str, float] | None = None):
        self.pool, self.mode = pool, mode
        self.by_tag: dict[str, list[dict]] = {}
        for md in pool:
            self.by_tag.setdefault(md.get("tag", "untagged"), []).append(md)
        self.tags = sorted(self.by_tag)
        weights = {tag: 1.0 for tag in self.tags} if tag_weights is None else dict(tag_weights)
        unknown = sorted(set(weights) - set(self.tags))
        if unknown:
            raise ConfigError(f"tag_weights names tags the prompt pool lacks: {unknown} (pool tags: {self.tags})")
        w = np.array([float(weights.get(tag, 0.0)) for tag in self.tags])
        if not w.sum() > 0:
            raise ConfigError("tag_weights gives every tag of the prompt pool weight 0")
        self.probs = w / w.sum()

    def draw(self, rng: np.random.Generator, n: int) -> list[dict]:
        if self.mode == "pool":
            return [self.pool[i] for i in rng.integers(0, len(self.pool), n)]
        picks = rng.choice(len(self.tags), size=n, p=self.probs)
        out = []
        for t in picks:
            prompts = self.by_tag[self.tags[int(t)]]
            out.append(prompts[int(rng.integers(len(prompts)))])
        return out

    def shares(self) -> dict[str, float]:
        """The stream's expected tag shares."""
        if self.mode == "pool":
            return {tag: len(self.by_tag[tag]) / len(self.pool) for tag in self.tags}
        return {tag: float(p) for tag, p in zip(self.tags, self.probs, strict=True)}


def tag_rows(tags: Sequence[str], group: torch.Tensor) -> dict[str, torch.Tensor]:
    """Row indices of each tag, given the tag of each group id (whole batch: ``group`` in 0..m-1)."""
    if not tags:
        return {}
    per_row = [tags[int(g)] for g in group.tolist()]
    out: dict[str, list[int]] = {}
    for i, tag in enumerate(per_row):
        out.setdefault(tag, []).append(i)
    return {tag: torch.tensor(rows, device=group.device) for tag, rows in out.items()}


def tag_stats(tags: Sequence[str], rewards: torch.Tensor, adv: torch.Tensor) -> dict[str, float]:
    """Per tag of a batch: its share of the groups, mean reward and mean |advantage| (0 = nothing to learn)."""
    if not tags:
        return {}
    group_size = len(rewards) // len(tags)
    group = torch.arange(len(tags), device=rewards.device).repeat_interleave(group_size)
    out: dict[str, float] = {}
    for tag, rows in tag_rows(tags, group).items():
        out[f"tag_share/{tag}"] = len(rows) / len(rewards)
        out[f"tag_reward/{tag}"] = float(rewards[rows].mean())
        out[f"tag_abs_adv/{tag}"] = float(adv[rows].abs().mean())
    return out


def prompt_pool(cfg: RLConfig, world: World) -> list[dict]:
    """The world's training prompts, or a scale config's ``prompts`` file (one a line, or jsonl)."""
    prompts = getattr(cfg, "prompts", None)
    if not prompts:
        return world.training_prompts()
    return read_prompt_file(prompts, known_tags=None, require_include=False)
