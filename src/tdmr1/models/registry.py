"""``load_backbone``: one entry point for every backbone, dispatching on a local folder's contents (an embedded
checkpoint, an SD3 or a Z-Image pipeline; nothing is downloaded), and the schedule and reward images of any
backbone (``schedule_of``, ``images_of``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tdmr1.config import option
from tdmr1.errors import CheckpointError, ConfigError

KINDS = ("auto", "embedded", "sd3", "zimage")
PIPELINES = {"StableDiffusion3Pipeline": "sd3", "ZImagePipeline": "zimage"}


@dataclass
class BackboneSpec:
    """Which backbone to load, from where, and how to run it (scale-path options ignored by embedded)."""

    kind: str = option("auto", "auto (from the folder's contents), embedded, sd3 or zimage")
    path: str | None = option(None, "local folder: an embedded checkpoint or a diffusers pipeline folder")
    resolution: int | None = option(None, "image side in pixels (default: SD3 sample_size x 8, Z-Image 1024)")
    sigmas: tuple[float, ...] | None = option(
        None, "explicit few-step levels ending at 0 (default: the released weights' schedule)"
    )
    solver: str | None = option(None, "euler or dpm (default: SD3 dpm, Z-Image euler)")
    mixed_precision: str = option("no", "denoiser compute dtype under autocast: no, bf16 or fp16 (weights fp32)")
    text_dtype: str = option("fp32", "text encoder weights: fp32, bf16 or fp16")
    max_sequence_length: int | None = option(None, "T5 / Qwen3 tokens (default: SD3 128, Z-Image 512)")
    integer_timesteps: bool | None = option(
        None,
        "SD3: at the schedule's levels feed floor(1000 s) as the authors' DPM-Solver scheduler does (999, 899, "
        "749, 499; tau draws stay 1000 s); default (None): on, as the released weights were trained",
    )

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"backbone.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.solver not in (None, "euler", "dpm"):
            raise ConfigError(f"backbone.solver must be euler or dpm, got {self.solver!r}")
        if self.sigmas is not None:
            from tdmr1.models.diffusers_backbone import check_sigmas

            check_sigmas(self.sigmas)


def detect_kind(path: str | Path) -> str:
    """``embedded``, ``sd3`` or ``zimage`` from a local folder's contents (CheckpointError otherwise)."""
    from tdmr1.models.diffusers_backbone import pipeline_class_of

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path} (only local folders are read; nothing is downloaded)")
    pipeline = pipeline_class_of(path)
    if pipeline is not None:
        if pipeline not in PIPELINES:
            raise CheckpointError(f"{path} holds a {pipeline}; supported: {', '.join(PIPELINES)}")
        return PIPELINES[pipeline]
    config = path / "config.json"
    if config.is_file():
        try:
            fmt = json.loads(config.read_text()).get("format")
        except (ValueError, AttributeError):
            raise CheckpointError(f"{config}: unreadable config") from None
        if fmt == "tdmr1-embedded-v1":
            return "embedded"
    raise CheckpointError(f"{path} is neither a tdmr1 checkpoint nor a diffusers pipeline folder")


def load_backbone(spec: BackboneSpec | str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load the backbone named by ``spec`` (a path, or a :class:`BackboneSpec`) onto ``device``."""
    if not isinstance(spec, BackboneSpec):
        spec = BackboneSpec(path=str(spec))
    spec.validate()
    if spec.path is None:
        raise ConfigError("backbone.path is required (a local folder)")
    kind = detect_kind(spec.path)
    if spec.kind != "auto" and spec.kind != kind:
        raise CheckpointError(f"{spec.path} holds a {kind} model, but backbone.kind is {spec.kind}")
    if kind == "embedded":
        from tdmr1.models.embedded import EmbeddedT2I

        return EmbeddedT2I.load(spec.path, device=device)
    from tdmr1.models.diffusers_backbone import BACKBONES

    kwargs = {
        "resolution": spec.resolution,
        "sigmas": spec.sigmas,
        "solver": spec.solver,
        "mixed_precision": spec.mixed_precision,
        "text_dtype": spec.text_dtype,
    }
    if spec.max_sequence_length is not None:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    if kind == "sd3":
        kwargs["integer_timesteps"] = True if spec.integer_timesteps is None else spec.integer_timesteps
    return BACKBONES[kind].from_pretrained(spec.path, **kwargs).to(device)


def schedule_of(model: nn.Module, steps: int, shift: float) -> tuple[Tensor, str]:
    """(sigmas, solver) of a backbone: its explicit schedule when it has one, else ``uniform_sigmas``
    with Euler (the embedded students)."""
    sigmas = getattr(model, "sigmas", None)
    if sigmas is not None:
        return sigmas.clone(), getattr(model, "solver", "euler")
    from tdmr1.diffusion.flow import uniform_sigmas

    return uniform_sigmas(steps, shift=shift), "euler"


def images_of(model: nn.Module, x: Tensor) -> np.ndarray:
    """Final states -> NHWC uint8 images for the reward (latent backbones decode through their VAE)."""
    decode = getattr(model, "images_uint8", None)
    if decode is not None:
        return decode(x)
    from tdmr1.diffusion.images import to_uint8

    return to_uint8(x)
