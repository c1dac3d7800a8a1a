"""Few-step sampling on a scale-path backbone for `tdmr1 sample|eval --model DIR`: a local pipeline folder and,
optionally, a generator adapter (a train export, a named .safetensors or the authors' .ckpt), sampled with
per-image seeds into GenEval's layout (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import Tensor, nn

from tdmr1.config import from_dict
from tdmr1.errors import CheckpointError, ConfigError, DataError
from tdmr1.geneval.layout import write_prompt_images
from tdmr1.manifest import write_manifest
from tdmr1.models.checkpoints import ADAPTER_FILE
from tdmr1.models.lora.roles import LoraSettings
from tdmr1.utils.outputs import prepare_results_dir

ADAPTER_FORMAT = "tdmr1-adapter-v1"
PRECISIONS = {"fp32": ("no", "fp32"), "bf16": ("bf16", "bf16")}


@dataclass
class AdapterSource:
    """Where the generator adapter comes from and how it is shaped."""

    path: Path
    weights: Path
    ordered: bool  # the authors' order-only list (else peft names)
    lora: LoraSettings | None  # None: the backbone's preset (rank from the file for named weights)
    info: dict[str, Any] = field(default_factory=dict)  # the export's config.json, if any


@dataclass
class ScaleGenerator:
    """A loaded backbone, its generator role (if an adapter was given) and the schedule it samples."""

    model: nn.Module
    roles: Any  # tdmr1.models.lora.roles.Roles or None
    sigmas: Tensor
    solver: str
    adapter: str | None
    source: str  # the pipeline folder

    def velocity_context(self):
        return self.roles.use("generator") if self.roles is not None else contextlib.nullcontext()


def read_adapter_source(path: str | Path) -> AdapterSource:
    """Classify an adapter path (see the module docstring); CheckpointError when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"LoRA not found: {path}")
    if path.is_dir():
        weights, config = path / ADAPTER_FILE, path / "config.json"
        if not weights.is_file():
            raise CheckpointError(f"{path} holds no {ADAPTER_FILE} (expected a `tdmr1 train` export folder)")
    else:
        weights, config = path, path.parent / "config.json"
    info: dict[str, Any] = {}
    if config.is_file():
        try:
            data = json.loads(config.read_text())
        except ValueError:
            raise CheckpointError(f"{config}: unreadable config.json") from None
        if isinstance(data, dict) and data.get("format") == ADAPTER_FORMAT:
            info = data
    ordered = weights.suffix != ".safetensors"
    lora = from_dict(LoraSettings, info["lora"]) if info.get("lora") and not ordered else None
    return AdapterSource(path, weights, ordered, lora, info)


def _named_rank(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        key = next((k for k in f.keys() if ".lora_A." in k), None)  # noqa: SIM118 - safe_open has no __iter__
        if key is None:
            raise CheckpointError(f"{weights}: no lora_A tensors (not a LoRA adapter file)")
        return int(f.get_slice(key).get_shape()[0])


def _lora_for(source: AdapterSource, kind: str) -> LoraSettings:
    from tdmr1.models.lora.presets import lora_settings

    if source.lora is not None:
        return source.lora
    if source.ordered:
        return lora_settings(f"{kind}-authors")
    rank = _named_rank(source.weights)
    return lora_settings(f"{kind}-authors", rank=rank, alpha=2.0 * rank)


def load_scale_generator(
    model_path: str | Path,
    kind: str | None = None,
    adapter: str | Path | None = None,
    resolution: int | None = None,
    precision: str = "fp32",
    device: str = "auto",
) -> ScaleGenerator:
    """Backbone from ``model_path`` (+ the generator adapter ``adapter``) on ``device``, ready to sample."""
    from tdmr1.devices import resolve_device
    from tdmr1.models.registry import BackboneSpec, detect_kind, load_backbone, schedule_of

    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    found = detect_kind(model_path)  # missing folder / unknown pipeline: one-line CheckpointError
    if found == "embedded":
        raise ConfigError(
            f"{model_path} is an embedded checkpoint: pass it as --checkpoint (--model is for sd3, zimage)"
        )
    if kind is not None and kind != found:
        raise CheckpointError(f"{model_path} holds a {found} pipeline, but --backbone is {kind}")
    source = read_adapter_source(adapter) if adapter is not None else None
    info = source.info if source is not None else {}
    if info.get("kind") not in (None, found):
        raise CheckpointError(f"{adapter} is an adapter for a {info['kind']} backbone, but {model_path} holds {found}")
    trained = info.get("backbone") or {}
    mixed, text_dtype = PRECISIONS[precision]
    spec = BackboneSpec(
        kind=found,
        path=str(model_path),
        resolution=resolution or trained.get("resolution"),
        max_sequence_length=trained.get("max_sequence_length"),
        integer_timesteps=trained.get("integer_timesteps"),  # None (no export / the authors' file): on
        sigmas=tuple(info["sigmas"]) if info.get("sigmas") else None,  # the levels the timesteps round at
        solver=info.get("solver"),
        mixed_precision=mixed,
        text_dtype=text_dtype,
    )
    dev = resolve_device(device)
    model = load_backbone(spec, device=dev).eval()
    model.requires_grad_(False)
    sigmas, solver = schedule_of(model, 4, 3.0)
    if info.get("sigmas"):  # the schedule the adapter was trained on
        sigmas, solver = torch.tensor(info["sigmas"], dtype=torch.float32), str(info.get("solver", solver))
    roles = None
    if source is not None:
        roles = _load_adapter(model, source, found)
        model.to(dev)  # the new adapter weights
    adapter_name = str(adapter) if adapter is not None else None
    return ScaleGenerator(model, roles, sigmas.to(dev), solver, adapter_name, str(model_path))


def _load_adapter(model: nn.Module, source: AdapterSource, kind: str):
    from tdmr1.models.lora.presets import load_ordered_adapter
    from tdmr1.models.lora.roles import Roles

    roles = Roles(model.denoiser, ["generator"], _lora_for(source, kind))
    if source.ordered:
        load_ordered_adapter(model.denoiser, "generator", source.weights)
    else:
        from safetensors.torch import load_file

        roles.load_adapter_state("generator", load_file(str(source.weights)))
    model.requires_grad_(False)
    return roles


@torch.no_grad()
def generate_latent_images(
    gen: ScaleGenerator, prompts: list[str], seeds: list[int], batch_size: int, progress=None
) -> np.ndarray:
    """NHWC uint8 images of ``prompts`` (one per entry) from per-image seeded noise, ``batch_size`` at a time."""
    from tdmr1.diffusion.sampling import sample

    model, device = gen.model, gen.sigmas.device
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk, chunk_seeds = prompts[start : start + batch_size], seeds[start : start + batch_size]
        noise = torch.stack(
            [torch.randn(model.image_shape, generator=torch.Generator().manual_seed(int(s))) for s in chunk_seeds]
        ).to(device)
        text = model.encode_prompts(chunk)
        with gen.velocity_context():
            latents = sample(lambda x, s, text=text: model(x, s, text), noise, gen.sigmas, solver=gen.solver).final
        out.append(model.images_uint8(latents))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(out)


def sampling_info(gen: ScaleGenerator) -> dict[str, Any]:
    """What the manifest and the results JSON record about how the images were made."""
    model = gen.model
    return {
        "backbone": model.kind,
        "model": gen.source,
        "lora": gen.adapter,
        "steps": len(gen.sigmas) - 1,
        "nfe": len(gen.sigmas) - 1,
        "sigmas": [round(float(s), 6) for s in gen.sigmas],
        "solver": gen.solver,
        "resolution": model.resolution,
        "mixed_precision": model.mixed_precision,
    }


def sample_scale_to_folder(
    gen: ScaleGenerator,
    metadata: list[dict[str, Any]],
    out_dir: str | Path,
    images_per_prompt: int,
    seed: int = 0,
    batch_size: int = 8,
    quiet: bool = False,
    overwrite: bool = False,
) -> tuple[float, np.ndarray]:
    """Sample every prompt into GenEval layout (+ ``manifest.json``); (seconds, images) as the embedded one."""
    from tdmr1.pipelines.generate import image_seeds

    if images_per_prompt < 1 or batch_size < 1:
        raise DataError(f"images_per_prompt and batch_size must be >= 1, got {images_per_prompt}, {batch_size}")
    prepare_results_dir(out_dir, overwrite)
    seeds = [image_seeds(seed, i, images_per_prompt) for i in range(len(metadata))]
    prompts = [md["prompt"] for md in metadata for _ in range(images_per_prompt)]
    extra = {"images_per_prompt": images_per_prompt, "seed": seed, "sampling": sampling_info(gen)}
    write_manifest(out_dir, [md["prompt"] for md in metadata], seeds, extra)
    t0 = time.time()
    with Progress(disable=quiet, transient=True) as bar:
        task = bar.add_task("sampling", total=len(prompts))
        flat = [s for row in seeds for s in row]
        images = generate_latent_images(gen, prompts, flat, batch_size, progress=lambda n: bar.advance(task, n))
    seconds = time.time() - t0
    for i, md in enumerate(metadata):
        write_prompt_images(out_dir, i, md, images[i * images_per_prompt : (i + 1) * images_per_prompt])
    return seconds, images
