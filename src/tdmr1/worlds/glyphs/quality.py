"""Image-quality proxy for generated words: the share of gray pixels (neither ink nor paper).

Clean renders are black on white with a thin antialiased rim, so only a few percent of their pixels
are gray; blur, noise and washed-out strokes raise the share.
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
