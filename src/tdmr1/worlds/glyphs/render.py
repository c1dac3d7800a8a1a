"""Word renderer (spec v2): black DejaVu Sans Bold text centred on a white 32 x 128 canvas, uint8 RGB.

The font size is the level's (16 px standard, 14 px hard). Centring uses the ink box PIL reports for the
text (``ImageFont.getbbox`` at the default ``la`` anchor): the text is drawn at
``x = (128 - ink_width) // 2 - left`` and ``y = (32 - ink_height) // 2 - top`` (integer pixels, so
renders are exact and deterministic). No rotation, no noise. The lexicons never hold a string wider than
120 px (``text_width``, PIL ``FreeTypeFont.getlength``); hand-written prompts wider than the canvas are
centred all the same and clipped at both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Canvas (height, width) in pixels.
HEIGHT, WIDTH = 32, 128
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


def text_origin(text: str, size: int = FONT_SIZE) -> tuple[int, int]:
    """Where ``draw.text`` must place ``text`` so that its ink box is centred on the canvas."""
    left, top, right, bottom = load_font(size).getbbox(text)
    return (WIDTH - (right - left)) // 2 - left, (HEIGHT - (bottom - top)) // 2 - top


def render_text(text: str, size: int = FONT_SIZE) -> np.ndarray:
    """``text`` rendered as uint8 [32, 128, 3] (three equal channels, ink 0 on paper 255)."""
    canvas = Image.new("L", (WIDTH, HEIGHT), PAPER)
    ImageDraw.Draw(canvas).text(text_origin(text, size), text, font=load_font(size), fill=INK)
    gray = np.asarray(canvas, dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def render_texts(texts: Sequence[str], size: int = FONT_SIZE) -> np.ndarray:
    """Several words rendered: uint8 [N, 32, 128, 3]."""
    out = np.empty((len(texts), HEIGHT, WIDTH, 3), dtype=np.uint8)
    for k, text in enumerate(texts):
        out[k] = render_text(text, size)
    return out
