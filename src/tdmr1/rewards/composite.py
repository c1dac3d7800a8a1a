"""Weighted sums of rewards (``reward: {shapes: 1.0, http://host:port: 0.5}``), each part kept for logging."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tdmr1.reward_protocol import Reward, RewardOutput
from tdmr1.rewards.guard import call_reward

#: info keys holding one part's per-image scores: ``reward/<label>``
PART_PREFIX = "reward/"


def part_label(key: str) -> str:
    """A log-friendly label for a reward spec key (``http://127.0.0.1:8700`` -> ``127.0.0.1_8700``)."""
    key = re.sub(r"^https?://", "", key)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_") or "reward"


class CompositeReward:
    """``sum_i w_i * r_i(images)``; ``info`` holds every part's scores as ``reward/<label>`` lists.

    A part that fails fails the whole call (never a partial sum). ``correct`` (and the other info keys)
    come from the first part that has them.
    """

    def __init__(self, parts: list[tuple[str, float, Reward]]):
        if not parts:
            raise ValueError("a composite reward needs at least one part")
        labels = [part_label(label) for label, _, _ in parts]
        if len(set(labels)) != len(labels):
            raise ValueError(f"composite reward parts must have distinct labels, got {labels}")
        self.parts = [(lab, float(w), r) for lab, (_, w, r) in zip(labels, parts, strict=True)]
        self.name = " + ".join(f"{w:g}*{lab}" for lab, w, _ in self.parts)
        self.interactive = any(getattr(r, "interactive", False) for _, _, r in self.parts)

    def set_iteration(self, iteration: int) -> None:
        for _, _, r in self.parts:
            if hasattr(r, "set_iteration"):
                r.set_iteration(iteration)

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict[str, Any]]) -> RewardOutput:
        total = np.zeros(len(images), dtype=np.float64)
        info: dict[str, list[Any]] = {}
        for label, weight, reward in self.parts:
            out = call_reward(reward, images, prompts, metadata, None)  # shape / NaN checks, part named
            total += weight * out.scores.astype(np.float64)
            info[PART_PREFIX + label] = out.scores.tolist()
            for key, values in out.info.items():
                info.setdefault(key, values)
        return RewardOutput(scores=total.astype(np.float32), info=info)


def reward_parts(info: dict[str, list[Any]]) -> dict[str, float]:
    """Mean score of every part of a composite reward's output: ``{"reward/shapes": 0.62, ...}`` (for logs)."""
    return {k: float(np.mean(v)) for k, v in info.items() if k.startswith(PART_PREFIX) and len(v)}
