"""Image-quality proxies for generated words: the share of gray pixels (neither ink nor paper) and of ink.

Clean renders are black on white with a thin antialiased rim, so only a few percent of their pixels
are gray; blur, noise and washed-out strokes raise the share. The ink share moves when strokes thicken,
vanish or smear (a collapse that an OCR reward may not punish).
"""

from __future__ import annotations

import numpy as np

#: Pixel values in [GRAY_LOW, GRAY_HIGH] count as gray.
GRAY_LOW, GRAY_HIGH = 64, 191


def gray_fraction(images: np.ndarray) -> float:
    """Fraction of pixels of uint8 NHWC ``images`` whose channel mean lies in [64, 191]."""
    if images.size == 0:
        return 0.0
    value = images.astype(np.float32).mean(axis=-1)
    return float(((value >= GRAY_LOW) & (value <= GRAY_HIGH)).mean())


def ink_fraction(images: np.ndarray) -> float:
    """Fraction of pixels of uint8 NHWC ``images`` whose channel mean lies below 64 (ink)."""
    if images.size == 0:
        return 0.0
    return float((images.astype(np.float32).mean(axis=-1) < GRAY_LOW).mean())


def quality(images: np.ndarray) -> dict[str, float]:
    """The world's quality proxies of uint8 NHWC ``images``: gray share and ink share."""
    return {"gray_fraction": gray_fraction(images), "ink_fraction": ink_fraction(images)}
