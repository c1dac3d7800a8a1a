"""Benchmark evaluation: sample a world's suite with a model, write GenEval layout, score, time it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from tdmr1.config import to_dict
from tdmr1.errors import DataError
from tdmr1.generate import SamplingConfig, generate_images
from tdmr1.geneval_layout import write_prompt_images
from tdmr1.manifest import write_manifest
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.scoring import score_folder
from tdmr1.utils.io import atomic_write_text
from tdmr1.utils.outputs import prepare_results_dir
from tdmr1.worlds import get_world


def image_seeds(seed: int, prompt_index: int, images_per_prompt: int) -> list[int]:
    """Fixed per-image seeds: image j of prompt i gets seed + i * images_per_prompt + j."""
    return [seed + prompt_index * images_per_prompt + j for j in range(images_per_prompt)]


def sample_to_folder(
    model: EmbeddedT2I,
    metadata: list[dict[str, Any]],
    out_dir: str | Path,
    sampling: SamplingConfig,
    images_per_prompt: int,
    seed: int = 0,
    batch_size: int = 64,
    quiet: bool = False,
    overwrite: bool = False,
) -> tuple[float, np.ndarray]:
    """Sample every prompt into GenEval layout; returns (sampling wall time in seconds, the images).

    ``out_dir`` must be empty (DataError otherwise) unless ``overwrite``, which first removes the prompt
    folders and manifest of an earlier run: a folder never mixes runs. ``manifest.json`` (prompts and
    seeds) is written before the images, so ``score`` and ``compare`` can check what they read."""
    if images_per_prompt < 1 or batch_size < 1:
        raise DataError(f"images_per_prompt and batch_size must be >= 1, got {images_per_prompt}, {batch_size}")
    prepare_results_dir(out_dir, overwrite)
    prompts, seeds = [], []
    for i, meta in enumerate(metadata):
        prompts += [meta["prompt"]] * images_per_prompt
        seeds += image_seeds(seed, i, images_per_prompt)
    write_manifest(
        out_dir,
        [md["prompt"] for md in metadata],
        [image_seeds(seed, i, images_per_prompt) for i in range(len(metadata))],
        {"images_per_prompt": images_per_prompt, "seed": seed, "sampling": to_dict(sampling)},
    )
    t0 = time.time()
    with Progress(disable=quiet, transient=True) as bar:
        task = bar.add_task("sampling", total=len(prompts))
        images = generate_images(model, prompts, seeds, sampling, batch_size, progress=lambda n: bar.advance(task, n))
    seconds = time.time() - t0
    for i, meta in enumerate(metadata):
        write_prompt_images(out_dir, i, meta, images[i * images_per_prompt : (i + 1) * images_per_prompt])
    return seconds, images


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
) -> dict[str, Any]:
    """Sample and score a world's benchmark suite; returns (and writes ``out_dir/results.json``) the report.

    ``out_dir`` must be empty unless ``overwrite`` (then the earlier ``images/`` and ``results.json`` are
    replaced): the scores always come from this run's images only."""
    world = get_world(world_name)
    world.check_image_size(model.image_shape[1:])
    prepare_results_dir(out_dir, overwrite)
    suite = world.benchmark_suite()
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
