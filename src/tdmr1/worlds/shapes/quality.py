"""Image-quality proxy for generated shapes: the share of foreground pixels far from every palette colour
(blur, colour bleeding, artefacts). Clean renders score exactly 0."""

from __future__ import annotations

import numpy as np

from tdmr1.worlds.shapes.palette import FOREGROUND_THRESHOLD, PALETTE

#: A foreground pixel farther than this (Euclidean RGB) from every palette colour counts as off-palette.
OFF_PALETTE_DISTANCE = 60.0


def off_palette_fraction(images: np.ndarray, distance: float = OFF_PALETTE_DISTANCE) -> float:
    """Fraction of foreground pixels (max channel > 60) of uint8 NHWC ``images`` that are off-palette."""
    pix = images.reshape(-1, 3).astype(np.float32)
    fg = pix.max(axis=1) > FOREGROUND_THRESHOLD
    if not fg.any():
        return 0.0
    d = np.sqrt(((pix[fg, None, :] - PALETTE[None].astype(np.float32)) ** 2).sum(-1)).min(axis=1)
    return float((d > distance).mean())
