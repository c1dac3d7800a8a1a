"""The reward gate: the generator reads the surrogate's reward direction only on prompt tags whose fresh
batches the surrogate has been measured to rank (running, group-weighted mean of ``sur_rank/<tag>``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

#: A tag's gate stays closed until its ranking was measured on at least this many prompt groups.
MIN_GROUPS = 4
#: Spread of one group's correlation (8 images): the gate opens on the running mean minus SPREAD / sqrt(groups),
#: so a tag measured on a few lucky groups stays closed.
SPREAD = 0.5


class RewardGate:
    """Per tag: a decaying, group-weighted mean of the surrogate's measured ranking; the gate is open where
    its lower bound (mean - SPREAD / sqrt(groups)) is >= ``threshold`` (None: open everywhere)."""

    def __init__(self, threshold: float | None, decay: float = 0.8):
        self.threshold, self.decay = threshold, decay
        self.rank: dict[str, float] = {}
        self.groups: dict[str, float] = {}

    def observe(self, stats: Mapping[str, float], tags: Sequence[str]) -> None:
        """Fold in one ``sur_rank`` measurement (``stats`` holds ``sur_rank/<tag>``; ``tags`` the batch's
        group tags, whose counts weight each tag's value)."""
        for tag in set(tags):
            value = stats.get(f"sur_rank/{tag}")
            if value is None:
                continue
            n = float(sum(t == tag for t in tags))
            old = self.decay * self.groups.get(tag, 0.0)
            self.rank[tag] = (old * self.rank.get(tag, 0.0) + n * float(value)) / (old + n)
            self.groups[tag] = old + n

    def is_open(self, tag: str) -> bool:
        if self.threshold is None:
            return True
        groups = self.groups.get(tag, 0.0)
        return groups >= MIN_GROUPS and self.rank[tag] - SPREAD / math.sqrt(groups) >= self.threshold

    def row_mask(self, tags: Sequence[str], group: torch.Tensor) -> torch.Tensor:
        """1.0 for rows (whole-batch group ids ``group``) whose tag's gate is open, else 0.0."""
        if self.threshold is None or not tags:
            return torch.ones(len(group), device=group.device)
        open_groups = torch.tensor([float(self.is_open(t)) for t in tags], device=group.device)
        return open_groups[group.long()]

    def stats(self) -> dict[str, float]:
        """``gate/<tag>`` (0/1) and ``gate_rank/<tag>`` (the running mean) for the logs."""
        if self.threshold is None:
            return {}
        out = {f"gate/{tag}": float(self.is_open(tag)) for tag in self.rank}
        return out | {f"gate_rank/{tag}": value for tag, value in self.rank.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"rank": dict(self.rank), "groups": dict(self.groups)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rank, self.groups = dict(state["rank"]), dict(state["groups"])
