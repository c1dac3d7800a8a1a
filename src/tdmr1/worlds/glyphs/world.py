"""The glyphs ``World`` (GlyphsEval spec v2): OCR reward, prompts and word renderer behind the generic
interface. ``glyphs`` is the standard level, ``glyphs-hard`` the hard one, ``glyphs-compact`` the CPU
level on a 32 x 64 canvas (``levels.py``)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tdmr1.worlds.base import Metric, World
from tdmr1.worlds.glyphs.captions import sample_training_batch
from tdmr1.worlds.glyphs.levels import COMPACT, STANDARD, Level, get_level
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
from tdmr1.worlds.glyphs.quality import quality
from tdmr1.worlds.glyphs.render import render_text

#: The authors' OCR column of docs/METHOD.md sec. 4 (beta 10, surrogate CFG 4.5, t_min 300/1000 for both
#: terms, all 4 steps rewarded). ``tdmr1 train`` without a config file and ``tdmr1 demo`` apply them.
RL_DEFAULTS = ("beta=10.0", "surrogate_cfg=4.5", "t_min_reward=0.3", "t_min_surrogate=0.3", "trunc_steps=4")

#: GlyphsEval's headline numbers: OCR accuracy (mean reward over images, the paper's metric) and the
#: exact-match rate (mean over word lengths of each length's exact-match rate; on the benchmark, with 40
#: words of every length, the same as the rate over images). Per length: the per-tag table.
METRICS = (Metric("ocr_accuracy", "mean_score", "OCR accuracy"), Metric("exact_match", "overall", "exact match"))


def config_file(stage: str, level: Level | str = STANDARD) -> str:
    """The repository's config for a training stage (``pretrain``, ``distill``, ``train``) at the level:
    ``configs/glyphs/<stage>.yaml`` (standard and hard share them), ``<stage>_compact.yaml`` at compact."""
    suffix = "_compact" if get_level(level) == COMPACT else ""
    return f"configs/glyphs/{stage}{suffix}.yaml"


def model_hint(level: Level | str = STANDARD) -> str:
    """How to make a model for the level (appended to image-shape mismatch errors and to the demo's
    missing-student error): the pretrain and distill commands with the level's configs."""
    lvl = get_level(level)
    name = lvl.world_name
    if lvl == COMPACT:
        why = "GlyphsEval v2 compact is 32x64 and models of the 32x128 levels do not fit"
    else:
        why = "GlyphsEval is spec v2 (32x128) and v1 models (32x64) do not fit"
    teacher = f"runs/{name}-teacher"
    return (
        f"{why}; train a v2 teacher with "
        f"`tdmr1 pretrain --world {name} --config {config_file('pretrain', lvl)} --out {teacher}`, then the "
        f"4-step student with `tdmr1 distill --world {name} --config {config_file('distill', lvl)} "
        f"--teacher {teacher}/model --out runs/{name}-tdm4` (see checkpoints/glyphs/README.md)"
    )


def render_oracle(
    metadata: dict[str, Any], rng: np.random.Generator | None = None, level: Level | str = STANDARD
) -> np.ndarray:
    """The clean render (uint8 [height, width, 3]: 32 x 128, compact 32 x 64) of the prompt's target
    text at the level's font size; ``rng`` is unused (one render)."""
    lvl = get_level(level)
    return render_text(target_text(str(metadata.get("prompt", "")), metadata), lvl.font_size, lvl.width, lvl.height)


def vocabulary() -> list[str]:
    """The char tokenizer's words: the template's words, the quote mark and one ``#X`` token per letter."""
    words = TEMPLATE.split('"')[0].split()
    return [*words, '"', *(f"#{c}" for c in LETTERS)]


def make_world(level: Level | str = STANDARD) -> World:
    """Build the glyphs world record of a level (``standard`` -> ``glyphs``, ``hard`` -> ``glyphs-hard``,
    ``compact`` -> ``glyphs-compact``)."""
    lvl = get_level(level)
    return World(
        name=lvl.world_name,
        image_size=lvl.image_size,
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
        quality=quality,
        metrics=METRICS,
        rl_defaults=RL_DEFAULTS,
        spec=lvl.describe(),
        model_hint=model_hint(lvl),
        demo_world=COMPACT.world_name if lvl == STANDARD else "",
    )
