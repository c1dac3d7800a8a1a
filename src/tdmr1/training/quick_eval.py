"""In-memory benchmark slice: sample prompts with the active role and score them with the world's reward."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import generate_images
from tdmr1.worlds.base import World


def quick_eval(
    model: EmbeddedT2I,
    world: World,
    suite: list[dict[str, Any]],
    sampling: SamplingConfig,
    images_per_prompt: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Per-tag accuracy (binary ``correct``), mean partial score, and overall = mean over tags."""
    metadata = [md for md in suite for _ in range(images_per_prompt)]
    prompts = [md["prompt"] for md in metadata]
    seeds = [seed + i for i in range(len(metadata))]
    images = generate_images(model, prompts, seeds, sampling)
    out = world.make_reward()(images, prompts, metadata)
    correct = np.asarray(out.info.get("correct", out.scores >= 1.0), dtype=float)
    tags = [md.get("tag", "all") for md in metadata]
    result: dict[str, float] = {}
    for tag in dict.fromkeys(tags):
        mask = np.array([t == tag for t in tags])
        result[tag] = float(correct[mask].mean())
    result["overall"] = float(np.mean([result[t] for t in dict.fromkeys(tags)]))
    result["score"] = float(np.mean(out.scores))
    return result
