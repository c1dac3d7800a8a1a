"""ShapesEval constants (spec v1): canvas, classes and plurals, the exact RGB palette, sizes, placement."""

from __future__ import annotations

import numpy as np

#: Canvas height and width in pixels (images are [32, 32, 3] uint8, background black).
CANVAS: int = 32
#: Background colour.
BACKGROUND: tuple[int, int, int] = (0, 0, 0)

#: Object classes, in the fixed order used for every enumeration.
CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
#: Plural of each class (used by counting prompts and captions).
PLURALS: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "cross": "crosses",
}

#: Colour name -> exact rendered RGB, in the fixed enumeration order of the spec table.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 230, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 230),
    "purple": (150, 60, 200),
    "pink": (250, 130, 190),
    "white": (245, 245, 245),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
#: Palette as an int32 array [8, 3] (row i is COLOR_NAMES[i]).
PALETTE: np.ndarray = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.int32)

#: Object size s (bounding-box side), inclusive range.
SIZE_MIN: int = 8
SIZE_MAX: int = 12
SIZES: tuple[int, ...] = tuple(range(SIZE_MIN, SIZE_MAX + 1))

#: Empty pixels between every bounding box and the canvas edge.
MARGIN: int = 1
#: Minimum number of empty pixels between the bounding boxes of two objects (along x or along y).
GAP: int = 2
#: Objects per scene.
MIN_OBJECTS: int = 1
MAX_OBJECTS: int = 4

#: GenEval relations (``position`` clause values).
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
#: Number words for counts 1..4.
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}

#: Checker constants (spec "The checker" steps 1-2).
FOREGROUND_THRESHOLD: int = 60  # a pixel is foreground when its max channel is > this
MIN_COMPONENT_PIXELS: int = 12  # components with fewer pixels are noise
