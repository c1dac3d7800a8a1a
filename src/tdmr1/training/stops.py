"""Why a training loop stops early, as one-line errors: Ctrl-C (``Interrupted``, exit 130) and a loss
that is no longer finite (``TrainingDiverged``); both leave the run folder at its last checkpoint."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from tdmr1.errors import Interrupted, TrainingDiverged


def interrupted(what: str, unit: str, done: int, checkpoint_every: int) -> Interrupted:
    """The error for Ctrl-C after ``done`` completed steps / iterations."""
    return Interrupted(
        f"{what} interrupted after {unit} {done}; the run folder keeps its last checkpoint "
        f"(saved every {checkpoint_every} {unit}s): run the same command to resume"
    )


def check_finite(losses: Mapping[str, float | torch.Tensor], unit: str, index: int) -> None:
    """TrainingDiverged naming the first loss that is NaN or infinite (before the optimiser steps on it)."""
    for name, value in losses.items():
        number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(number):
            raise TrainingDiverged(
                f"{name} is {number} at {unit} {index}: training stopped, the run folder keeps its last checkpoint "
                "(check the init weights, the learning rates and the reward)"
            )
