"""The glyphs ``World``: GlyphsEval's OCR reward, prompts and word renderer behind the generic interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdmr1.worlds.base import Metric, World
from tdmr1.worlds.glyphs.captions import sample_training_batch
from tdmr1.worlds.glyphs.lexicon import LETTERS
from tdmr1.worlds.glyphs.ocr import OcrReward
from tdmr1.worlds.glyphs.prompts import (
    BENCH_IMAGES_PER_PROMPT,
    TAGS,
    TEMPLATE,
    benchmark_suite,
    grid_prompts,
    read_prompt_file,
    resolve_metadata,
    target_text,
    training_prompts,
)
from tdmr1.worlds.glyphs.quality import gray_fraction
from tdmr1.worlds.glyphs.render import HEIGHT, WIDTH, render_text

#: The authors' OCR column of METHOD.md sec. 4 (beta 10, surrogate CFG 4.5, t_min 300/1000 for both terms).
RL_DEFAULTS = ("beta=10.0", "surrogate_cfg=4.5", "t_min_reward=0.3", "t_min_surrogate=0.3", "trunc_steps=4")

#: GlyphsEval's headline numbers: OCR accuracy (mean reward, the paper's metric) and the exact-match rate.
METRICS = (Metric("ocr_accuracy", "mean_score", "OCR accuracy"), Metric("exact_match", "overall", "exact match"))


def render_oracle(metadata: dict[str, Any], rng: np.random.Generator | None = None) -> np.ndarray:
    """The clean render (uint8 [32, 64, 3]) of the prompt's target text; ``rng`` is unused (one render)."""
    return render_text(target_text(str(metadata.get("prompt", "")), metadata))


def vocabulary() -> list[str]:
    """The char tokenizer's words: the template's words, the quote mark and one ``#X`` token per letter."""
    words = TEMPLATE.split('"')[0].split()
    return [*words, '"', *(f"#{c}" for c in LETTERS)]


def make_world() -> World:
    """Build the glyphs world record."""
    return World(
        name="glyphs",
        image_size=(HEIGHT, WIDTH),
        tags=TAGS,
        images_per_prompt=BENCH_IMAGES_PER_PROMPT,
        tokenizer_mode="char",
        make_reward=OcrReward,
        benchmark_suite=benchmark_suite,
        training_prompts=training_prompts,
        training_batch=sample_training_batch,
        render_oracle=render_oracle,
        read_prompts=read_prompt_file,
        resolve_metadata=resolve_metadata,
        vocabulary=vocabulary,
        grid_prompts=grid_prompts,
        quality=lambda images: {"gray_fraction": gray_fraction(images)},
        metrics=METRICS,
        rl_defaults=RL_DEFAULTS,
    )
