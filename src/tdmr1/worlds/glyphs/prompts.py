"""GlyphsEval prompts: the template ``a sign that says "WORD"``, the target text of a prompt, the benchmark and RL
splits, prompt files; metadata tags name the word's length (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import DataError
from tdmr1.geneval.layout import read_prompt_file as _read_geneval_file
from tdmr1.worlds.glyphs.levels import STANDARD, Level, get_level, length_tag
from tdmr1.worlds.glyphs.lexicon import LETTERS, RL_SEED, benchmark_lexicon, rl_lexicon

#: The standard level's tags, one per word length (``4_letters`` ... ``8_letters``).
TAGS: tuple[str, ...] = STANDARD.tags
#: Benchmark: images per prompt.
BENCH_IMAGES_PER_PROMPT = 4
#: Prompt template.
TEMPLATE = 'a sign that says "{}"'
_EXAMPLE = TEMPLATE.format("WORD")


def make_prompt(text: str) -> str:
    """The template prompt for ``text``."""
    return TEMPLATE.format(text)


def make_metadata(text: str) -> dict[str, Any]:
    """Metadata of the template prompt for ``text`` (upper-case A-Z); the tag is its length."""
    return {"prompt": make_prompt(text), "tag": length_tag(len(text)), "text": text}


def parse_target(prompt: str) -> str:
    """The text between the first pair of double quotes of ``prompt`` (as written); DataError if none."""
    if not isinstance(prompt, str):
        raise DataError(f"prompt must be a string, got {prompt!r}")
    parts = prompt.split('"')
    if len(parts) < 3:
        raise DataError(f"prompt {prompt!r} has no text in double quotes (glyphs prompts read: {_EXAMPLE})")
    return parts[1]


def normalize_text(text: Any) -> str:
    """``text`` upper-cased; DataError unless it is a non-empty string of letters A-Z (either case)."""
    if not isinstance(text, str):
        raise DataError(f"glyphs text must be a string, got {text!r}")
    upper = text.upper()
    if not upper:
        raise DataError("glyphs text is empty (quote at least one letter A-Z)")
    bad = sorted({c for c in upper if c not in LETTERS})
    if bad:
        raise DataError(f"glyphs text {text!r} holds characters other than the letters A-Z: {bad}")
    return upper


def resolve_metadata(md: Mapping[str, Any]) -> dict[str, Any]:
    """Validated glyphs metadata: ``text`` filled from the prompt when absent, ``tag`` set to its length.

    DataError when ``md`` is not an object, has no string ``prompt``, when neither ``text`` nor the
    prompt's quotes give a valid target, when ``text`` contradicts the quotes, or when a given ``tag`` is
    not the text's length tag.
    """
    if not isinstance(md, Mapping):
        raise DataError(f"metadata must be a JSON object, got {type(md).__name__}")
    prompt = md.get("prompt")
    if not isinstance(prompt, str):
        raise DataError(f"metadata needs a string 'prompt', got {prompt!r}")
    if "text" in md:
        text = normalize_text(md["text"])
        if prompt.count('"') >= 2 and parse_target(prompt).upper() != text:
            raise DataError(f"metadata text {md['text']!r} differs from the quoted text of prompt {prompt!r}")
    else:
        text = normalize_text(parse_target(prompt))
    tag = length_tag(len(text))
    if "tag" in md and md["tag"] != tag:
        raise DataError(f"tag {md['tag']!r} does not match the {len(text)}-letter text {text!r} (expected {tag!r})")
    return {**md, "tag": tag, "text": text}


def target_text(prompt: str, metadata: Mapping[str, Any] | None = None) -> str:
    """The upper-case target of one reward call: ``metadata["text"]`` if given, else the prompt's quotes."""
    if metadata is not None and "text" in metadata:
        return normalize_text(metadata["text"])
    return normalize_text(parse_target(prompt))


def benchmark_suite(level: Level | str = STANDARD) -> list[dict[str, Any]]:
    """GlyphsEval: the benchmark words (seed 2, 40 per length: 200; compact 120) as metadata, in lexicon
    order."""
    return [make_metadata(w) for w in benchmark_lexicon(level)]


def training_prompts(seed: int = RL_SEED, n: int | None = None, level: Level | str = STANDARD) -> list[dict[str, Any]]:
    """RL prompts over the level's 2,000 RL words (seed 3, disjoint from the benchmark words).

    ``n=None``: every RL word once, shuffled by ``np.random.default_rng(seed)``. Otherwise ``n``
    prompts drawn uniformly with replacement by the same generator. The word pool never depends on
    ``seed``; only the order and the draws do. Every prompt's tag is its length (``make_metadata``), so
    the trainer's tag-balanced stream (``prompt_stream: balanced``) draws each word length equally.
    """
    pool = rl_lexicon(level)
    rng = np.random.default_rng(seed)
    if n is None:
        return [make_metadata(pool[i]) for i in rng.permutation(len(pool))]
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    return [make_metadata(pool[i]) for i in rng.integers(len(pool), size=n)]


#: Prompts of a preview grid.
GRID_SIZE = 8


def grid_prompts(level: Level | str = STANDARD) -> list[str]:
    """Eight fixed preview prompts, shortest word first: the first benchmark prompt of each length, then
    the next ones of the longest lengths until there are eight (standard and hard, five lengths: the
    second of the three longest, e.g. 4, 5, 6, 6, 7, 7, 8, 8 letters; compact: 5, 5, 6, 6, 6, 7, 7, 7)."""
    lvl = get_level(level)
    suite = benchmark_suite(lvl)
    by_length = {n: [md for md in suite if len(md["text"]) == n] for n in lvl.lengths}
    picked: list[dict[str, Any]] = []
    for rank in range(max(len(v) for v in by_length.values())):
        order = lvl.lengths if rank == 0 else lvl.lengths[::-1]
        picked += [by_length[n][rank] for n in order if rank < len(by_length[n])]
        if len(picked) >= GRID_SIZE:
            break
    return [md["prompt"] for md in sorted(picked[:GRID_SIZE], key=lambda md: len(md["text"]))]


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a glyphs prompt file: metadata JSON lines or plain-text prompts, one a line (blank lines skipped).

    Every entry comes back resolved (``prompt``, ``tag``, ``text``); errors name ``file:line``.
    """
    return _read_geneval_file(path, known_tags=None, require_include=False, resolve=resolve_metadata)
