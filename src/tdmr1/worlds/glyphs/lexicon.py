"""Seeded strings of GlyphsEval v2: the benchmark, the RL prompts and the teacher's pre-training stream, drawn in a
fixed order, disjoint, no string wider than the level's width rule (the draws and seeds: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import string
from collections.abc import Iterable
from functools import cache

import numpy as np

from tdmr1.worlds.glyphs.levels import STANDARD, Level, get_level
from tdmr1.worlds.glyphs.render import text_width

LETTERS = string.ascii_uppercase
TRAIN_SEED, BENCH_SEED, RL_SEED = 1, 2, 3
BENCH_PER_LENGTH, RL_SIZE = 40, 2_000


def fits(text: str, level: Level | str = STANDARD) -> bool:
    """The width rule: ``text`` rendered at the level's font size is at most ``max_width`` px wide
    (120 px; compact 60 px)."""
    lvl = get_level(level)
    return text_width(text, lvl.font_size) <= lvl.max_width


def draw_string(rng: np.random.Generator, level: Level | str = STANDARD) -> str:
    """One random string of the level: length first, then letters, redrawn until it fits the width rule."""
    lvl = get_level(level)
    length = int(rng.integers(lvl.min_len, lvl.max_len + 1))
    while True:
        word = "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), size=length))
        if fits(word, lvl):
            return word


def draw_words(
    seed: int, n: int, level: Level | str = STANDARD, exclude: Iterable[str] = (), per_length: int | None = None
) -> list[str]:
    """``n`` distinct strings drawn with ``default_rng(seed)``, none in ``exclude``; with ``per_length``,
    at most that many of each length (``n`` must then be ``per_length`` x the number of lengths)."""
    lvl = get_level(level)
    if per_length is not None and n != per_length * len(lvl.lengths):
        raise ValueError(f"n={n} must be per_length x {len(lvl.lengths)} lengths")
    rng = np.random.default_rng(seed)
    banned = set(exclude)
    words: list[str] = []
    seen: set[str] = set()
    count = dict.fromkeys(lvl.lengths, 0)
    while len(words) < n:
        word = draw_string(rng, lvl)
        if word in seen or word in banned or (per_length is not None and count[len(word)] >= per_length):
            continue
        seen.add(word)
        count[len(word)] += 1
        words.append(word)
    return words


@cache
def _benchmark(level: Level) -> tuple[str, ...]:
    return tuple(draw_words(BENCH_SEED, BENCH_PER_LENGTH * len(level.lengths), level, per_length=BENCH_PER_LENGTH))


@cache
def _rl(level: Level) -> tuple[str, ...]:
    return tuple(draw_words(RL_SEED, RL_SIZE, level, exclude=_benchmark(level)))


@cache
def held_out(level: Level | str = STANDARD) -> frozenset[str]:
    """Every benchmark and RL string of the level: never a pre-training caption."""
    lvl = get_level(level)
    return frozenset(_benchmark(lvl) + _rl(lvl))


def benchmark_lexicon(level: Level | str = STANDARD) -> list[str]:
    """GlyphsEval's words (seed 2), 40 of each length (200; compact: 120), in draw order."""
    return list(_benchmark(get_level(level)))


def rl_lexicon(level: Level | str = STANDARD) -> list[str]:
    """The 2,000 RL prompt words (seed 3), disjoint from the benchmark."""
    return list(_rl(get_level(level)))


def training_stream(rng: np.random.Generator) -> np.random.Generator:
    """The pre-training strings' own generator for one batch: ``default_rng([1, k])`` with ``k`` one
    63-bit draw from the run's generator (so runs are seeded and resumable, and the strings never share
    a stream with the run's noise or caption dropout)."""
    return np.random.default_rng([TRAIN_SEED, int(rng.integers(2**63))])


def training_words(rng: np.random.Generator, n: int, level: Level | str = STANDARD) -> list[str]:
    """``n`` fresh pre-training strings (repeats possible), never a benchmark or RL string."""
    lvl = get_level(level)
    banned = held_out(lvl)
    stream = training_stream(rng)
    words: list[str] = []
    while len(words) < n:
        word = draw_string(stream, lvl)
        if word not in banned:
            words.append(word)
    return words
