"""Seeded lexicons of 3- and 4-letter strings (A-Z): training, GlyphsEval benchmark and RL prompts.

Each lexicon draws words with ``np.random.default_rng(seed)``, one word at a time: the length
``rng.integers(3, 5)`` (3 or 4, uniform), then the letters ``rng.integers(0, 26, size=length)``
(uniform over A-Z). A word already drawn, or one that belongs to an earlier lexicon, is rejected and
the next draw is made, until the lexicon is full; words keep their draw order.

| lexicon | seed | size | disjoint from |
| --- | --- | --- | --- |
| training (teacher captions) | 1 | 4,000 | - |
| benchmark (GlyphsEval) | 2 | 200 | training |
| RL training prompts | 3 | 2,000 | training, benchmark |
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from functools import cache

import numpy as np

LETTERS = string.ascii_uppercase
MIN_LEN, MAX_LEN = 3, 4
TRAIN_SEED, BENCH_SEED, RL_SEED = 1, 2, 3
TRAIN_SIZE, BENCH_SIZE, RL_SIZE = 4_000, 200, 2_000


def draw_words(seed: int, n: int, exclude: Iterable[str] = ()) -> list[str]:
    """``n`` distinct random words drawn with ``default_rng(seed)``, none of them in ``exclude``."""
    rng = np.random.default_rng(seed)
    banned = set(exclude)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        length = int(rng.integers(MIN_LEN, MAX_LEN + 1))
        word = "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), size=length))
        if word in seen or word in banned:
            continue
        seen.add(word)
        words.append(word)
    return words


@cache
def _training() -> tuple[str, ...]:
    return tuple(draw_words(TRAIN_SEED, TRAIN_SIZE))


@cache
def _benchmark() -> tuple[str, ...]:
    return tuple(draw_words(BENCH_SEED, BENCH_SIZE, exclude=_training()))


@cache
def _rl() -> tuple[str, ...]:
    return tuple(draw_words(RL_SEED, RL_SIZE, exclude=_training() + _benchmark()))


def training_lexicon() -> list[str]:
    """The teacher's 4,000 training words (seed 1)."""
    return list(_training())


def benchmark_lexicon() -> list[str]:
    """GlyphsEval's 200 words (seed 2), none of them a training word."""
    return list(_benchmark())


def rl_lexicon() -> list[str]:
    """The 2,000 RL prompt words (seed 3), disjoint from the training and benchmark words."""
    return list(_rl())
