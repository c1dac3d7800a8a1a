"""Benchmark evaluation: sample a world's suite with a model, write GenEval layout, score, time it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import DataError
from tdmr1.eval.scoring import score_folder
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import sample_to_folder
from tdmr1.utils.io import atomic_write_text
from tdmr1.utils.outputs import prepare_results_dir
from tdmr1.worlds import get_world


def _device_name(model: EmbeddedT2I) -> str:
    """``cpu`` or the GPU's name (timings are only comparable on the same device)."""
    device = next(model.parameters()).device
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def evaluate(
    model: EmbeddedT2I,
    world_name: str,
    sampling: SamplingConfig,
    out_dir: str | Path,
    images_per_prompt: int = 4,
    limit_prompts: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    overwrite: bool = False,
    tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Sample and score a world's benchmark suite; returns (and writes ``out_dir/results.json``) the report.

    ``out_dir`` must be empty unless ``overwrite`` (then the earlier ``images/`` and ``results.json`` are
    replaced): the scores always come from this run's images only."""
    world = get_world(world_name)
    world.check_image_size(model.image_shape[1:])
    prepare_results_dir(out_dir, overwrite)
    suite = world.benchmark_suite()
    if tags is not None:  # only these tags' prompts (e.g. the tags a run trained on, at more images a prompt)
        unknown = sorted(set(tags) - set(world.tags))
        if unknown or not tags:
            raise DataError(f"tags must name some of the world's tags {list(world.tags)}, got {list(tags)}")
        suite = [md for md in suite if md["tag"] in tags]
    if limit_prompts is not None:
        if limit_prompts < 1:
            raise DataError(f"limit_prompts must be >= 1, got {limit_prompts}")
        suite = world.subsample_suite(suite, limit_prompts)
    images_dir = Path(out_dir) / "images"
    seconds, images = sample_to_folder(model, suite, images_dir, sampling, images_per_prompt, seed, quiet=quiet)
    report = score_folder(world_name, images_dir)
    result = {
        "world": world_name,
        **({"world_spec": world.spec} if world.spec else {}),
        **report.summary(),
        "nfe": sampling.nfe,
        "steps": sampling.steps,
        "cfg": sampling.cfg,
        "sampler": sampling.sampler,
        "shift": sampling.shift,
        "images": len(suite) * images_per_prompt,
        "sampling_seconds": round(seconds, 2),
        "device": _device_name(model),
        **(world.quality(images) if world.quality is not None else {}),
    }
    atomic_write_text(Path(out_dir) / "results.json", json.dumps(result, indent=2))
    return result
