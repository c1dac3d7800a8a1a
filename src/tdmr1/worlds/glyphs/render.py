"""Word renderer (spec v2): black DejaVu Sans Bold text centred on a white canvas of the level's size, uint8 RGB,
exact and deterministic (the centring rule: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tdmr1.worlds.glyphs.levels import HEIGHT, WIDTH

#: Font size in pixels of the standard level.
FONT_SIZE = 16
#: Ink and paper values.
INK, PAPER = 0, 255


def font_path() -> Path:
    """The DejaVu Sans Bold TTF that ships inside matplotlib."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


@cache
def load_font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont:
    """The glyphs font at ``size`` px (loaded once per size and process)."""
    return ImageFont.truetype(str(font_path()), size)


def text_width(text: str, size: int = FONT_SIZE) -> float:
    """Rendered width of ``text`` in pixels (PIL ``FreeTypeFont.getlength``): the spec's width rule."""
    return float(load_font(size).getlength(text))


def text_origin(text: str, size: int = FONT_SIZE, width: int = WIDTH, height: int = HEIGHT) -> tuple[int, int]:
    """Where ``draw.text`` must place ``text`` so that its ink box is centred on a ``height`` x ``width`` canvas."""
    left, top, right, bottom = load_font(size).getbbox(text)
    return (width - (right - left)) // 2 - left, (height - (bottom - top)) // 2 - top


def render_text(text: str, size: int = FONT_SIZE, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``text`` rendered as uint8 [height, width, 3] (default 32 x 128; three equal channels, ink 0 on
    paper 255)."""
    canvas = Image.new("L", (width, height), PAPER)
    ImageDraw.Draw(canvas).text(text_origin(text, size, width, height), text, font=load_font(size), fill=INK)
    gray = np.asarray(canvas, dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def render_texts(texts: Sequence[str], size: int = FONT_SIZE, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Several words rendered: uint8 [N, height, width, 3] (default 32 x 128)."""
    out = np.empty((len(texts), height, width, 3), dtype=np.uint8)
    for k, text in enumerate(texts):
        out[k] = render_text(text, size, width, height)
    return out
