"""GlyphsEval difficulty levels (spec v2): canvas, font size, word lengths and width rule of ``standard``,
``hard`` and ``compact``, each chosen by world name (the table: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from dataclasses import dataclass

from tdmr1.errors import ConfigError

#: Canvas (height, width) in pixels of the standard and hard levels.
HEIGHT, WIDTH = 32, 128
#: Widest allowed text (PIL ``FreeTypeFont.getlength``, pixels) on the 128-px canvas; wider strings are redrawn.
MAX_TEXT_WIDTH = 120.0


@dataclass(frozen=True)
class Level:
    """One difficulty level of GlyphsEval v2."""

    name: str
    world_name: str
    font_size: int
    min_len: int
    max_len: int
    max_width: float = MAX_TEXT_WIDTH
    height: int = HEIGHT
    width: int = WIDTH

    @property
    def lengths(self) -> tuple[int, ...]:
        """Word lengths of the level, shortest first."""
        return tuple(range(self.min_len, self.max_len + 1))

    @property
    def tags(self) -> tuple[str, ...]:
        """The benchmark's tags: one per word length (``4_letters`` ... ``8_letters``)."""
        return tuple(length_tag(n) for n in self.lengths)

    @property
    def image_size(self) -> tuple[int, int]:
        """The level's canvas (height, width) in pixels."""
        return (self.height, self.width)

    def describe(self) -> str:
        """One line for results and reports: ``GlyphsEval v2 standard (16 px, 4-8 letters, 32x128)``."""
        return (
            f"GlyphsEval v2 {self.name} ({self.font_size} px, {self.min_len}-{self.max_len} letters, "
            f"{self.height}x{self.width})"
        )


def length_tag(n: int) -> str:
    """The tag of an ``n``-letter word (``5_letters``): GlyphsEval's per-length breakdown."""
    return f"{n}_letters"


STANDARD = Level("standard", "glyphs", font_size=16, min_len=4, max_len=8)
HARD = Level("hard", "glyphs-hard", font_size=14, min_len=6, max_len=10)
COMPACT = Level("compact", "glyphs-compact", font_size=12, min_len=5, max_len=7, max_width=60.0, width=64)
LEVELS: dict[str, Level] = {lvl.name: lvl for lvl in (STANDARD, HARD, COMPACT)}


def get_level(level: Level | str = STANDARD) -> Level:
    """A level by record or name (``standard`` | ``hard`` | ``compact``); ConfigError for anything else."""
    if isinstance(level, Level):
        return level
    if level not in LEVELS:
        raise ConfigError(f"unknown glyphs level {level!r} (known: {', '.join(LEVELS)})")
    return LEVELS[level]
