"""GlyphsEval prompts: the template, the target text of a prompt, the benchmark and RL splits, prompt files.

Every prompt reads ``a sign that says "WORD"``; the target is the text between the first pair of double
quotes. Metadata (one dict per prompt, like GenEval's) is ``{"prompt": ..., "tag": "text", "text": WORD}``
with ``text`` in upper case A-Z. Prompts written by hand may quote lower-case letters (the target is
upper-cased) but nothing else: no digits, spaces or punctuation, and not an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import DataError
from tdmr1.geneval_layout import read_prompt_file as _read_geneval_file
from tdmr1.worlds.glyphs.lexicon import LETTERS, RL_SEED, benchmark_lexicon, rl_lexicon

#: The benchmark's single tag.
TAG = "text"
TAGS: tuple[str, ...] = (TAG,)
#: Benchmark: images per prompt.
BENCH_IMAGES_PER_PROMPT = 4
#: Prompt template.
TEMPLATE = 'a sign that says "{}"'
_EXAMPLE = TEMPLATE.format("WORD")


def make_prompt(text: str) -> str:
    """The template prompt for ``text``."""
    return TEMPLATE.format(text)


def make_metadata(text: str) -> dict[str, Any]:
    """Metadata of the template prompt for ``text`` (upper-case A-Z)."""
    return {"prompt": make_prompt(text), "tag": TAG, "text": text}


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
    """Validated glyphs metadata: ``tag`` set to ``text`` and ``text`` filled from the prompt when absent.

    DataError when ``md`` is not an object, has no string ``prompt``, has another tag, when neither
    ``text`` nor the prompt's quotes give a valid target, or when ``text`` contradicts the quotes.
    """
    if not isinstance(md, Mapping):
        raise DataError(f"metadata must be a JSON object, got {type(md).__name__}")
    prompt = md.get("prompt")
    if not isinstance(prompt, str):
        raise DataError(f"metadata needs a string 'prompt', got {prompt!r}")
    if "tag" in md and md["tag"] != TAG:
        raise DataError(f"unknown tag {md['tag']!r} (known: {TAG})")
    if "text" in md:
        text = normalize_text(md["text"])
        if prompt.count('"') >= 2 and parse_target(prompt).upper() != text:
            raise DataError(f"metadata text {md['text']!r} differs from the quoted text of prompt {prompt!r}")
    else:
        text = normalize_text(parse_target(prompt))
    return {**md, "tag": TAG, "text": text}


def target_text(prompt: str, metadata: Mapping[str, Any] | None = None) -> str:
    """The upper-case target of one reward call: ``metadata["text"]`` if given, else the prompt's quotes."""
    if metadata is not None and "text" in metadata:
        return normalize_text(metadata["text"])
    return normalize_text(parse_target(prompt))


def benchmark_suite() -> list[dict[str, Any]]:
    """GlyphsEval: the 200 benchmark words (seed 2) as metadata, in lexicon order (4 images each)."""
    return [make_metadata(w) for w in benchmark_lexicon()]


def training_prompts(seed: int = RL_SEED, n: int | None = None) -> list[dict[str, Any]]:
    """RL prompts over the 2,000 RL words (seed 3, disjoint from the training and benchmark words).

    ``n=None``: every RL word once, shuffled by ``np.random.default_rng(seed)``. Otherwise ``n``
    prompts drawn uniformly with replacement by the same generator. The word pool never depends on
    ``seed``; only the order and the draws do.
    """
    pool = rl_lexicon()
    rng = np.random.default_rng(seed)
    if n is None:
        return [make_metadata(pool[i]) for i in rng.permutation(len(pool))]
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    return [make_metadata(pool[i]) for i in rng.integers(len(pool), size=n)]


def grid_prompts() -> list[str]:
    """Eight fixed preview prompts: the first eight benchmark prompts."""
    return [md["prompt"] for md in benchmark_suite()[:8]]


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a glyphs prompt file: metadata JSON lines or plain-text prompts, one a line (blank lines skipped).

    Every entry comes back resolved (``prompt``, ``tag``, ``text``); errors name ``file:line``.
    """
    return _read_geneval_file(path, known_tags=None, require_include=False, resolve=resolve_metadata)
