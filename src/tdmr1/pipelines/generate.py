"""Text-to-image sampling with the embedded model (per-image seeded noise, CFG, any solver), also into
GenEval's folder layout."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from tdmr1.config import to_dict
from tdmr1.diffusion.images import to_uint8
from tdmr1.diffusion.sampling import SamplingConfig, Trajectory, sample, schedule
from tdmr1.errors import DataError
from tdmr1.geneval.layout import write_prompt_images
from tdmr1.manifest import write_manifest
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.utils.outputs import prepare_results_dir


def seeded_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """One noise tensor per seed, independent of batch composition."""
    out = torch.empty(len(seeds), *shape)
    for i, seed in enumerate(seeds):
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    return out


def text_velocity(
    model: EmbeddedT2I, prompts: list[str], cfg: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Velocity function of ``model`` for ``prompts`` with classifier-free guidance ``cfg``."""
    cond = model.encode_prompts(prompts)
    if cfg == 1.0:
        return lambda x, s: model(x, s, cond)
    uncond = model.encode_prompts([""] * len(prompts))
    both = (torch.cat([cond[0], uncond[0]]), torch.cat([cond[1], uncond[1]]))

    def velocity(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        v_c, v_u = model(torch.cat([x, x]), torch.cat([s, s]), both).chunk(2)
        return v_u + cfg * (v_c - v_u)

    return velocity


@torch.no_grad()
def generate(model: EmbeddedT2I, prompts: list[str], seeds: list[int], cfg: SamplingConfig) -> Trajectory:
    """Sample one image per (prompt, seed); returns the trajectory (final images in [-1, 1])."""
    noise = seeded_noise(model.image_shape, seeds).to(next(model.parameters()).device)
    return sample(text_velocity(model, prompts, cfg.cfg), noise, schedule(cfg), solver=cfg.sampler)


def generate_images(
    model: EmbeddedT2I,
    prompts: list[str],
    seeds: list[int],
    cfg: SamplingConfig,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """uint8 NHWC images for every (prompt, seed), in batches."""
    chunks = []
    for start in range(0, len(prompts), batch_size):
        p, s = prompts[start : start + batch_size], seeds[start : start + batch_size]
        chunks.append(to_uint8(generate(model, p, s, cfg).final))
        if progress is not None:
            progress(len(p))
    return np.concatenate(chunks) if chunks else np.zeros((0, *model.image_shape[1:], 3), np.uint8)


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
