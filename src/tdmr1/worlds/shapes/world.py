"""The shapes ``World``: ShapesEval's reward, prompts and oracle renderer behind the generic interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdmr1.worlds.base import World, first_per_tag
from tdmr1.worlds.shapes.captions import sample_training_batch
from tdmr1.worlds.shapes.checker import ShapesChecker
from tdmr1.worlds.shapes.palette import CANVAS, CLASSES, COLOR_NAMES, NUMBER_WORDS, PLURALS, RELATIONS
from tdmr1.worlds.shapes.prompts import (
    BENCH_IMAGES_PER_PROMPT,
    TAGS,
    benchmark_suite,
    read_prompt_file,
    resolve_metadata,
    training_prompts,
)
from tdmr1.worlds.shapes.quality import off_palette_fraction
from tdmr1.worlds.shapes.render import render_scene
from tdmr1.worlds.shapes.sampling import sample_scene_for


def render_oracle(metadata: dict[str, Any], rng: np.random.Generator, max_distractors: int = 0) -> np.ndarray:
    """An image (uint8 [32, 32, 3]) that the checker judges correct for ``metadata``."""
    return render_scene(sample_scene_for(metadata, rng, max_distractors=max_distractors))


def vocabulary() -> list[str]:
    """Every word of the captions and the template prompts (plus ``an``), in a fixed order."""
    words = ["a", "an", "photo", "of", "and", "some", *NUMBER_WORDS.values(), *CLASSES, *PLURALS.values()]
    words += list(COLOR_NAMES)
    for rel in RELATIONS:
        words += rel.split()
    return list(dict.fromkeys(words))


def grid_prompts() -> list[str]:
    """Eight fixed preview prompts: the first benchmark prompt of each tag, then two more."""
    suite = benchmark_suite()
    firsts = [md["prompt"] for md in first_per_tag(suite, 1)]
    return firsts + ["a photo of three crosses", "a photo of a red circle and a blue square"]


#: ``tdmr1 demo``'s recipe on 2 CPU cores (docs/USAGE.md#the-demo): the explicit pixel surrogate starts
#: warmed up (the shipped ``checkpoints/shapes/surrogate``: 12k labelled student rollouts, its model card
#: says how it was made), half the groups are counting prompts, and the reward gate lets the reward
#: direction act only on tags the surrogate is measured to rank; the others get the KL and CFG terms.
DEMO_DEFAULTS = (
    "tag_weights={counting: 0.5, single_object: 0.1, two_object: 0.1, colors: 0.1, position: 0.1, color_attr: 0.1}",
    "prompts_per_iteration=8",
    "surrogate=explicit",
    "explicit_input=pixels",
    "explicit_loss=mse",
    "head_width=32",
    "t_min_surrogate=0.05",
    "t_max_surrogate=0.6",
    "surrogate_clean_share=0.5",
    "surrogate_init=checkpoints/shapes/surrogate",
    "surrogate_replay=32",
    "surrogate_steps=8",
    "t_min_reward=0.05",
    "explicit_step=0.25",
    "reward_gate=0.2",
    "lr_generator=2e-4",
    "sur_rank_every=2",
)


def make_world() -> World:
    """Build the shapes world record."""
    return World(
        name="shapes",
        image_size=(CANVAS, CANVAS),
        tags=TAGS,
        images_per_prompt=BENCH_IMAGES_PER_PROMPT,
        tokenizer_mode="word",
        make_reward=ShapesChecker,
        benchmark_suite=benchmark_suite,
        training_prompts=training_prompts,
        training_batch=sample_training_batch,
        render_oracle=render_oracle,
        read_prompts=read_prompt_file,
        resolve_metadata=resolve_metadata,
        vocabulary=vocabulary,
        grid_prompts=grid_prompts,
        quality=lambda images: {"off_palette_fraction": off_palette_fraction(images)},
        demo_defaults=DEMO_DEFAULTS,
    )
