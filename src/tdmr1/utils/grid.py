"""Image grids as PNG: nearest-neighbour upscaled tiles with optional labels under each tile."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tdmr1.utils.io import atomic_writer


def make_grid(
    images: np.ndarray,
    ncol: int = 8,
    scale: int = 4,
    labels: list[str] | None = None,
    pad: int = 2,
    label_lines: int = 2,
) -> Image.Image:
    """Tile uint8 NHWC images into one RGB picture."""
    n, h, w, _ = images.shape
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    tw, th = w * scale, h * scale
    font = ImageFont.load_default(size=10) if labels else None
    label_h = 12 * label_lines if labels else 0
    canvas = Image.new("RGB", (ncol * (tw + pad) + pad, nrow * (th + label_h + pad) + pad), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    chars = max(8, tw // 6)
    for i in range(n):
        r, c = divmod(i, ncol)
        x, y = pad + c * (tw + pad), pad + r * (th + label_h + pad)
        tile = Image.fromarray(images[i]).resize((tw, th), Image.NEAREST)
        canvas.paste(tile, (x, y))
        if labels:
            lines = textwrap.wrap(labels[i], chars)[:label_lines]
            for j, line in enumerate(lines):
                draw.text((x, y + th + 12 * j), line, fill=(230, 230, 230), font=font)
    return canvas


def save_grid(images: np.ndarray, path: str | Path, **kwargs) -> Path:
    """Write a grid PNG atomically and return its path."""
    path = Path(path)
    with atomic_writer(path) as tmp:
        make_grid(images, **kwargs).save(tmp, format="PNG")
    return path
