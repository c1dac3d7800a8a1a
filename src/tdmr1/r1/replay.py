"""The surrogate's replay buffer of recent rollouts and whether its warm-up ran, as run-state modules (a
resumed run continues with the same buffer and does not warm up again)."""

from __future__ import annotations

from collections import deque
from typing import Any

from tdmr1.r1.rollout import Rollout
from tdmr1.training.distributed import BatchLayout


class ReplayState:
    """The replay buffer, saved with the run as whole batches (each process keeps its rows when it loads them)."""

    def __init__(self, buffer: deque, layout: BatchLayout):
        self.buffer, self.layout = buffer, layout

    def state_dict(self) -> dict[str, Any]:
        return {"rollouts": [vars(ro) for ro in self.buffer]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.clear()
        self.buffer.extend(Rollout(**ro).mine(self.layout) for ro in state["rollouts"])


class WarmupState:
    """Whether the surrogate's warm-up ran (saved with the run: a resumed run does not repeat it)."""

    def __init__(self) -> None:
        self.done = False

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = bool(state["done"])
