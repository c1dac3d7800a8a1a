"""A simple colour namer for detected objects: GenEval's ten colour names from the pixels' hue, much weaker than
GenEval's CLIP classifier (prefer a detector that returns ``color``; the rule: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import rgb_to_hsv

from tdmr1.geneval.rules import GENEVAL_COLORS

_INDEX = {c: i for i, c in enumerate(GENEVAL_COLORS)}
#: Hue bins (start degree, name) in increasing order; hue >= 345 wraps to red.
_HUE_BINS: tuple[tuple[float, str], ...] = (
    (0.0, "red"),
    (15.0, "orange"),
    (45.0, "yellow"),
    (70.0, "green"),
    (170.0, "blue"),
    (260.0, "purple"),
    (300.0, "pink"),
    (345.0, "red"),
)


def pixel_colors(pixels: np.ndarray) -> np.ndarray:
    """Index into ``GENEVAL_COLORS`` of each uint8 RGB pixel (any shape [..., 3])."""
    hsv = rgb_to_hsv(np.asarray(pixels, dtype=np.float32) / 255.0)
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    starts = np.array([b for b, _ in _HUE_BINS])
    names = np.array([_INDEX[c] for _, c in _HUE_BINS])
    out = names[np.searchsorted(starts, h, side="right") - 1]
    red, orange, yellow = _INDEX["red"], _INDEX["orange"], _INDEX["yellow"]
    out = np.where((out == red) & (v < 0.45), _INDEX["brown"], out)
    out = np.where(((out == orange) | (out == yellow)) & (v < 0.6), _INDEX["brown"], out)
    out = np.where((out == red) & (s < 0.5) & (v > 0.7), _INDEX["pink"], out)
    grey = s < 0.2
    out = np.where(grey, np.where(v >= 0.5, _INDEX["white"], _INDEX["black"]), out)
    return np.where(v < 0.2, _INDEX["black"], out)


def object_pixels(image: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None) -> np.ndarray:
    """Pixels [K, 3] of an object: under its mask, else in the central half of its box (at least 1 pixel)."""
    if mask is not None and mask.any():
        return image[mask]
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
    c0 = int(np.clip(np.floor(cx - hw), 0, width - 1))
    r0 = int(np.clip(np.floor(cy - hh), 0, height - 1))
    c1 = int(np.clip(np.ceil(cx + hw), c0 + 1, width))
    r1 = int(np.clip(np.ceil(cy + hh), r0 + 1, height))
    return image[r0:r1, c0:c1].reshape(-1, 3)


def name_color(image: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None) -> str:
    """GenEval colour name of one object of a uint8 RGB image [H, W, 3] (most frequent pixel colour)."""
    counts = np.bincount(pixel_colors(object_pixels(image, box, mask)).ravel(), minlength=len(GENEVAL_COLORS))
    return GENEVAL_COLORS[int(np.argmax(counts))]
