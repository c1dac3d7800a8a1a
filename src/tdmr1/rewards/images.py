"""Image batches of rewards on real images: one array [N, H, W, 3] or a list of images of different sizes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdmr1.errors import DataError
from tdmr1.reward_protocol import validate_images


def as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A batch [N, H, W, 3] or a list of [H, W, 3] uint8 RGB images (sizes may differ) -> list; else DataError."""
    if isinstance(images, np.ndarray) and images.dtype != object:
        validate_images(images)
        return list(images)
    if not isinstance(images, Sequence | np.ndarray):
        raise DataError(f"images must be a uint8 array [N, H, W, 3] or a list of [H, W, 3] arrays, got {type(images)}")
    out: list[np.ndarray] = []
    for k, img in enumerate(images):
        ok = isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
        if not ok or min(img.shape[:2]) < 1:
            shape = getattr(img, "shape", None)
            raise DataError(f"image {k} must be a uint8 RGB array [H, W, 3], got {type(img).__name__} {shape}")
        out.append(img)
    return out
