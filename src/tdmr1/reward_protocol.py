"""The black-box reward protocol every world and reward implements: ``(images uint8 [N, H, W, 3] RGB, prompts,
metadata) -> RewardOutput`` (float32 scores [N], per-image ``info`` lists such as ``correct``); never differentiated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tdmr1.errors import DataError


@dataclass
class RewardOutput:
    """Scores float32 [N] plus per-image info lists (each of length N)."""

    scores: np.ndarray
    info: dict[str, list[Any]] = field(default_factory=dict)


@runtime_checkable
class Reward(Protocol):
    """Batched black-box reward."""

    name: str

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict[str, Any]]) -> RewardOutput: ...


def validate_images(images: np.ndarray, height: int | None = None, width: int | None = None) -> None:
    """Raise DataError unless ``images`` is uint8 [N, H, W, 3] (with the given H, W if set)."""
    if not isinstance(images, np.ndarray):
        raise DataError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"images must be NHWC RGB [N, H, W, 3], got shape {tuple(images.shape)}")
    if height is not None and images.shape[1] != height or width is not None and images.shape[2] != width:
        raise DataError(f"images must be {height}x{width}, got {images.shape[1]}x{images.shape[2]}")
