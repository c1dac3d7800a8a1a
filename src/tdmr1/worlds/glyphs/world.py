"""The glyphs ``World`` (GlyphsEval spec v2): OCR reward, prompts and word renderer behind the generic
interface. ``glyphs`` is the standard level, ``glyphs-hard`` the hard one (``levels.py``)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tdmr1.worlds.base import Metric, World
from tdmr1.worlds.glyphs.captions import sample_training_batch
from tdmr1.worlds.glyphs.levels import STANDARD, Level, get_level
from tdmr1.worlds.glyphs.lexicon import LETTERS
from tdmr1.worlds.glyphs.ocr import OcrReward
from tdmr1.worlds.glyphs.prompts import (
    BENCH_IMAGES_PER_PROMPT,
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

#: The authors' OCR column of docs/METHOD.md sec. 4 (beta 10, surrogate CFG 4.5, t_min 300/1000 for both
#: terms, all 4 steps rewarded). ``tdmr1 train`` without a config file and ``tdmr1 demo`` apply them.
RL_DEFAULTS = ("beta=10.0", "surrogate_cfg=4.5", "t_min_reward=0.3", "t_min_surrogate=0.3", "trunc_steps=4")

#: GlyphsEval's headline numbers: OCR accuracy (mean reward over images, the paper's metric) and the
#: exact-match rate (mean over word lengths of each length's exact-match rate; on the benchmark, with 40
#: words of every length, the same as the rate over images). Per length: the per-tag table.
METRICS = (Metric("ocr_accuracy", "mean_score", "OCR accuracy"), Metric("exact_match", "overall", "exact match"))


def model_hint(level: Level | str = STANDARD) -> str:
    """How to make a model for the level (appended to image-shape mismatch errors)."""
    name = get_level(level).world_name
    return (
        f"GlyphsEval is spec v2 (32x128) and v1 models (32x64) do not fit; train a v2 teacher with "
        f"`tdmr1 pretrain --world {name} --config configs/glyphs/pretrain.yaml --out runs/{name}-teacher` "
        f"(then `tdmr1 distill`; see checkpoints/glyphs/README.md)"
    )


def render_oracle(
    metadata: dict[str, Any], rng: np.random.Generator | None = None, level: Level | str = STANDARD
) -> np.ndarray:
    """The clean render (uint8 [32, 128, 3]) of the prompt's target text at the level's font size;
    ``rng`` is unused (one render)."""
    return render_text(target_text(str(metadata.get("prompt", "")), metadata), get_level(level).font_size)


def vocabulary() -> list[str]:
    """The char tokenizer's words: the template's words, the quote mark and one ``#X`` token per letter."""
    words = TEMPLATE.split('"')[0].split()
    return [*words, '"', *(f"#{c}" for c in LETTERS)]


def make_world(level: Level | str = STANDARD) -> World:
    """Build the glyphs world record of a level (``standard`` -> ``glyphs``, ``hard`` -> ``glyphs-hard``)."""
    lvl = get_level(level)
    return World(
        name=lvl.world_name,
        image_size=(HEIGHT, WIDTH),
        tags=lvl.tags,
        images_per_prompt=BENCH_IMAGES_PER_PROMPT,
        tokenizer_mode="char",
        make_reward=OcrReward,
        benchmark_suite=partial(benchmark_suite, lvl),
        training_prompts=partial(training_prompts, level=lvl),
        training_batch=partial(sample_training_batch, level=lvl),
        render_oracle=partial(render_oracle, level=lvl),
        read_prompts=read_prompt_file,
        resolve_metadata=resolve_metadata,
        vocabulary=vocabulary,
        grid_prompts=partial(grid_prompts, lvl),
        quality=lambda images: {"gray_fraction": gray_fraction(images)},
        metrics=METRICS,
        rl_defaults=RL_DEFAULTS,
        spec=lvl.describe(),
        model_hint=model_hint(lvl),
    )
