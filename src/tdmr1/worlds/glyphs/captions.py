"""The teacher's training data: fresh random strings rendered and captioned with their exact text (the template
prompt, ``a sign that says "KQTAXB"``), never a benchmark or RL string (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import numpy as np

from tdmr1.worlds.glyphs.levels import STANDARD, Level, get_level
from tdmr1.worlds.glyphs.lexicon import training_words
from tdmr1.worlds.glyphs.prompts import make_prompt
from tdmr1.worlds.glyphs.render import render_texts


def sample_training_words(rng: np.random.Generator, n: int, level: Level | str = STANDARD) -> list[str]:
    """``n`` fresh pre-training strings of the level (see ``lexicon.training_words``)."""
    return training_words(rng, n, level)


def sample_training_batch(
    rng: np.random.Generator, n: int, level: Level | str = STANDARD
) -> tuple[np.ndarray, list[str]]:
    """``n`` training examples: uint8 images [n, height, width, 3] of the level's canvas (32 x 128;
    compact 32 x 64) and their captions."""
    lvl = get_level(level)
    words = sample_training_words(rng, n, lvl)
    return render_texts(words, lvl.font_size, lvl.width, lvl.height), [make_prompt(w) for w in words]
