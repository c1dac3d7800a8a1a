"""ShapesEval prompts: GenEval's six templates -> metadata, their enumeration, the benchmark and RL splits
(templates and enumeration order: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import DataError
from tdmr1.geneval.layout import read_prompt_file as _read_geneval_file
from tdmr1.geneval.layout import validate_geneval_metadata
from tdmr1.worlds.shapes.palette import CLASSES, COLOR_NAMES, NUMBER_WORDS, PLURALS, RELATIONS

#: GenEval's six tags, in report order.
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
#: Benchmark: at most this many prompts per tag (sampled without replacement when there are more).
BENCH_MAX_PROMPTS_PER_TAG: int = 100
#: Benchmark: images per prompt.
BENCH_IMAGES_PER_PROMPT: int = 4
#: Seed of the benchmark suite (spec) and default seed of RL training prompts (must differ).
BENCH_SEED: int = 0
TRAIN_SEED: int = 1


def _md(tag: str, include: list[dict[str, Any]], prompt: str, exclude: list[dict[str, Any]] | None = None) -> dict:
    md: dict[str, Any] = {"tag": tag, "include": include}
    if exclude is not None:
        md["exclude"] = exclude
    md["prompt"] = prompt
    return md


def single_object(cls: str) -> dict[str, Any]:
    return _md("single_object", [{"class": cls, "count": 1}], f"a photo of a {cls}")


def two_object(a: str, b: str) -> dict[str, Any]:
    return _md("two_object", [{"class": a, "count": 1}, {"class": b, "count": 1}], f"a photo of a {a} and a {b}")


def counting(cls: str, n: int) -> dict[str, Any]:
    return _md(
        "counting",
        [{"class": cls, "count": n}],
        f"a photo of {NUMBER_WORDS[n]} {PLURALS[cls]}",
        exclude=[{"class": cls, "count": n + 1}],
    )


def colors(color: str, cls: str) -> dict[str, Any]:
    return _md("colors", [{"class": cls, "count": 1, "color": color}], f"a photo of a {color} {cls}")


def position(a: str, rel: str, b: str) -> dict[str, Any]:
    return _md(
        "position",
        [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
        f"a photo of a {a} {rel} a {b}",
    )


def color_attr(c1: str, a: str, c2: str, b: str) -> dict[str, Any]:
    return _md(
        "color_attr",
        [{"class": a, "count": 1, "color": c1}, {"class": b, "count": 1, "color": c2}],
        f"a photo of a {c1} {a} and a {c2} {b}",
    )


@cache
def _table() -> dict[str, tuple[dict[str, Any], ...]]:
    pairs = [(a, b) for a in CLASSES for b in CLASSES if a != b]
    return {
        "single_object": tuple(single_object(c) for c in CLASSES),
        "two_object": tuple(two_object(a, b) for a, b in pairs),
        "counting": tuple(counting(c, n) for c in CLASSES for n in (2, 3, 4)),
        "colors": tuple(colors(col, c) for c in CLASSES for col in COLOR_NAMES),
        "position": tuple(position(a, rel, b) for a, b in pairs for rel in RELATIONS),
        "color_attr": tuple(
            color_attr(c1, a, c2, b) for a, b in pairs for c1 in COLOR_NAMES for c2 in COLOR_NAMES if c1 != c2
        ),
    }


@cache
def _by_prompt() -> dict[str, dict[str, Any]]:
    return {md["prompt"]: md for mds in _table().values() for md in mds}


def _check_tag(tag: str) -> None:
    if tag not in TAGS:
        raise DataError(f"unknown tag {tag!r} (known: {', '.join(TAGS)})")


def all_prompts(tag: str) -> list[dict[str, Any]]:
    """Every distinct prompt of ``tag`` (metadata dicts, fresh copies), in enumeration order."""
    _check_tag(tag)
    return copy.deepcopy(list(_table()[tag]))


def benchmark_suite(seed: int = BENCH_SEED) -> list[dict[str, Any]]:
    """The ShapesEval suite: per tag (in ``TAGS`` order) every distinct prompt when there are at most
    100, else 100 drawn without replacement by ``np.random.default_rng(seed).choice(n, 100,
    replace=False)`` (a fresh generator per tag) and kept in enumeration order. 208 prompts for seed 0;
    the benchmark renders ``BENCH_IMAGES_PER_PROMPT`` images each (seeds: ``bench_image_seed``).
    """
    suite: list[dict[str, Any]] = []
    for tag in TAGS:
        prompts = all_prompts(tag)
        if len(prompts) > BENCH_MAX_PROMPTS_PER_TAG:
            idx = np.random.default_rng(seed).choice(len(prompts), BENCH_MAX_PROMPTS_PER_TAG, replace=False)
            prompts = [prompts[i] for i in sorted(idx.tolist())]
        suite.extend(prompts)
    return suite


def bench_image_seed(prompt_index: int, image_index: int, seed: int = BENCH_SEED) -> int:
    """Fixed seed of benchmark image ``image_index`` of prompt ``prompt_index`` (position in the suite)."""
    return seed * 1_000_000 + prompt_index * BENCH_IMAGES_PER_PROMPT + image_index


def training_pool(bench_seed: int = BENCH_SEED) -> dict[str, list[dict[str, Any]]]:
    """RL prompt pool per tag: every distinct prompt, minus the benchmark's color_attr prompts."""
    held_out = {md["prompt"] for md in benchmark_suite(bench_seed) if md["tag"] == "color_attr"}
    return {tag: [md for md in all_prompts(tag) if md["prompt"] not in held_out] for tag in TAGS}


def training_prompts(seed: int = TRAIN_SEED, n: int | None = None, bench_seed: int = BENCH_SEED) -> list[dict]:
    """RL training prompts drawn with ``np.random.default_rng(seed)`` (seed != the benchmark's).

    ``n=None``: the whole pool (680 prompts for the default seeds), shuffled. Otherwise ``n`` prompts
    drawn with replacement, tag-balanced: each draw picks a tag uniformly, then a prompt of that tag.
    The benchmark's color_attr prompts never appear (the other tags are shared, as in GenEval RL).
    """
    if seed == bench_seed:
        raise DataError(f"training seed must differ from the benchmark seed ({bench_seed})")
    pool = training_pool(bench_seed)
    rng = np.random.default_rng(seed)
    if n is None:
        flat = [md for tag in TAGS for md in pool[tag]]
        return [flat[i] for i in rng.permutation(len(flat))]
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    tags = rng.integers(len(TAGS), size=n)
    out = []
    for t in tags:
        prompts = pool[TAGS[t]]
        out.append(copy.deepcopy(prompts[rng.integers(len(prompts))]))
    return out


def validate_metadata(md: Any) -> dict[str, Any]:
    """Validate GenEval metadata against the shapes vocabulary (tags, classes, colours, relations)."""
    return validate_geneval_metadata(md, known_tags=TAGS, classes=CLASSES, colors=COLOR_NAMES, relations=RELATIONS)


def parse_prompt(prompt: str) -> dict[str, Any]:
    """Metadata of a grammar prompt (exact template text; ``an`` accepted for ``a``); DataError if none."""
    if not isinstance(prompt, str):
        raise DataError(f"prompt must be a string, got {prompt!r}")
    norm = " ".join(prompt.strip().lower().split())
    norm = " ".join("a" if w == "an" else w for w in norm.split(" "))
    md = _by_prompt().get(norm)
    if md is None:
        raise DataError(f"prompt {prompt!r} is not a ShapesEval template prompt")
    return copy.deepcopy(md)


def resolve_metadata(md: Mapping[str, Any]) -> dict[str, Any]:
    """Full metadata for a checker call: validated clauses, or parsed from a bare ``{"prompt": ...}``."""
    if isinstance(md, Mapping) and "include" not in md and "tag" not in md and "prompt" in md:
        return parse_prompt(md["prompt"])
    return validate_metadata(md)


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a GenEval JSONL or plain-text prompt file for the shapes world.

    JSON lines must use the six tags and the shapes vocabulary; plain-text lines must be template
    prompts and come back as full metadata (tag, include, exclude). Errors name ``file:line``.
    """
    return _read_geneval_file(path, known_tags=TAGS, resolve=resolve_metadata)
