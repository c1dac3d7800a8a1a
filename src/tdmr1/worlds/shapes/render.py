"""Pixel-exact renderer: the four shape masks, the ``Obj`` record and scene -> uint8 image, without anti-aliasing
(the exact masks: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from tdmr1.errors import DataError
from tdmr1.worlds.shapes.palette import CANVAS, CLASSES, COLORS, SIZE_MAX, SIZE_MIN


@dataclass(frozen=True)
class Obj:
    """One object: class, colour name, top-left corner (x = column, y = row) and size s.

    The object's pixels all lie in its bounding box ``bbox = (x, y, x + s, y + s)`` (exclusive end),
    and every edge row/column of that box holds at least one object pixel.
    """

    cls: str
    color: str
    x: int
    y: int
    size: int

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) with exclusive x1, y1: the box covers columns x0..x1-1 and rows y0..y1-1."""
        return (self.x, self.y, self.x + self.size, self.y + self.size)

    @property
    def center(self) -> tuple[float, float]:
        """Box centre (x, y) in continuous pixel coordinates."""
        return (self.x + self.size / 2, self.y + self.size / 2)


def cross_thickness(size: int) -> int:
    """Arm thickness of a cross of the given size: Python's round(size / 3) (banker's rounding)."""
    return round(size / 3)


@cache
def _shape_mask(cls: str, size: int) -> np.ndarray:
    i, j = np.mgrid[0:size, 0:size]
    if cls == "square":
        mask = np.ones((size, size), dtype=bool)
    elif cls == "circle":
        mask = (2 * j + 1 - size) ** 2 + (2 * i + 1 - size) ** 2 <= size**2
    elif cls == "triangle":
        mask = np.abs(2 * j + 1 - size) <= i + 1
    elif cls == "cross":
        t = cross_thickness(size)
        a = (size - t) // 2
        band_i = (i >= a) & (i < a + t)
        band_j = (j >= a) & (j < a + t)
        mask = band_i | band_j
    else:
        raise DataError(f"unknown shape class {cls!r} (known: {', '.join(CLASSES)})")
    mask.setflags(write=False)
    return mask


def shape_mask(cls: str, size: int) -> np.ndarray:
    """Read-only boolean mask [size, size] of a shape (see the module docstring for the exact rules)."""
    if cls not in CLASSES:
        raise DataError(f"unknown shape class {cls!r} (known: {', '.join(CLASSES)})")
    if not isinstance(size, int | np.integer) or size < 1:
        raise DataError(f"shape size must be a positive int, got {size!r}")
    return _shape_mask(cls, int(size))


def _check_obj(obj: Obj) -> None:
    if obj.color not in COLORS:
        raise DataError(f"unknown colour {obj.color!r} (known: {', '.join(COLORS)})")
    if not SIZE_MIN <= obj.size <= SIZE_MAX:
        raise DataError(f"object size {obj.size} outside [{SIZE_MIN}, {SIZE_MAX}]")
    x0, y0, x1, y1 = obj.bbox
    if x0 < 0 or y0 < 0 or x1 > CANVAS or y1 > CANVAS:
        raise DataError(f"object {obj} does not fit in the {CANVAS}x{CANVAS} canvas")


def draw(canvas: np.ndarray, obj: Obj) -> None:
    """Paint ``obj`` onto a [32, 32, 3] uint8 canvas in place (later objects overwrite earlier ones)."""
    _check_obj(obj)
    mask = shape_mask(obj.cls, obj.size)
    canvas[obj.y : obj.y + obj.size, obj.x : obj.x + obj.size][mask] = COLORS[obj.color]


def render_scene(objs: Iterable[Obj]) -> np.ndarray:
    """Render objects on a black 32 x 32 canvas: uint8 [32, 32, 3]. Placement rules are not checked
    here (only that each object fits the canvas), so hand-made touching/overlapping scenes are possible.
    """
    canvas = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    for obj in objs:
        draw(canvas, obj)
    return canvas


def render_scenes(scenes: Sequence[Iterable[Obj]]) -> np.ndarray:
    """Render a batch of scenes: uint8 [N, 32, 32, 3]."""
    out = np.zeros((len(scenes), CANVAS, CANVAS, 3), dtype=np.uint8)
    for k, objs in enumerate(scenes):
        for obj in objs:
            draw(out[k], obj)
    return out
