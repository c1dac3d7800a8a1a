"""GlyphsEval difficulty levels (spec v2): font size, word lengths and the width rule of each.

| level | world name | font size | lengths | width rule |
| --- | --- | --- | --- | --- |
| ``standard`` (default) | ``glyphs`` | 16 px | 4-8 | <= 120 px |
| ``hard`` | ``glyphs-hard`` | 14 px | 6-10 | <= 120 px |

Everything else (32 x 128 canvas, DejaVu Sans Bold, seeds, 40 benchmark words per length, metric) is
the same at both levels. A level is chosen by world name (``--world glyphs-hard``), so it is part of
every run folder, checkpoint (``meta.world``) and result (``world``) it produces.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdmr1.errors import ConfigError

#: Widest allowed text (PIL ``FreeTypeFont.getlength``, pixels); wider strings are redrawn.
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

    @property
    def lengths(self) -> tuple[int, ...]:
        """Word lengths of the level, shortest first."""
        return tuple(range(self.min_len, self.max_len + 1))

    @property
    def tags(self) -> tuple[str, ...]:
        """The benchmark's tags: one per word length (``4_letters`` ... ``8_letters``)."""
        return tuple(length_tag(n) for n in self.lengths)

    def describe(self) -> str:
        """One line for results and reports: ``GlyphsEval v2 standard (16 px, 4-8 letters, 32x128)``."""
        return f"GlyphsEval v2 {self.name} ({self.font_size} px, {self.min_len}-{self.max_len} letters, 32x128)"


def length_tag(n: int) -> str:
    """The tag of an ``n``-letter word (``5_letters``): GlyphsEval's per-length breakdown."""
    return f"{n}_letters"


STANDARD = Level("standard", "glyphs", font_size=16, min_len=4, max_len=8)
HARD = Level("hard", "glyphs-hard", font_size=14, min_len=6, max_len=10)
LEVELS: dict[str, Level] = {lvl.name: lvl for lvl in (STANDARD, HARD)}


def get_level(level: Level | str = STANDARD) -> Level:
    """A level by record or name (``standard`` | ``hard``); ConfigError for anything else."""
    if isinstance(level, Level):
        return level
    if level not in LEVELS:
        raise ConfigError(f"unknown glyphs level {level!r} (known: {', '.join(LEVELS)})")
    return LEVELS[level]
