"""TDM-R1 on a scale-path backbone (SD3.5, Z-Image): loading it with its explicit few-step schedule, the memory
switches, the generator's initial adapter, cached prompts, and the run state of its adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.models.lora.roles import Roles
from tdmr1.r1.config import RLConfig


def load_scale_backbone(cfg: RLConfig, device: torch.device) -> tuple[nn.Module, SamplingConfig]:
    """The backbone of ``cfg.backbone`` and its explicit few-step schedule (steps from its sigmas)."""
    from tdmr1.models.registry import load_backbone, schedule_of  # looked up at call time (tests patch it)

    base_dtype = getattr(cfg, "base_dtype", "fp32")
    # a bf16 base is cast on the CPU first (the fp32 copy never reaches the accelerator); FewStepSystem moves it
    model = load_backbone(cfg.backbone, device=device if base_dtype == "fp32" else "cpu")
    if base_dtype != "fp32":
        from tdmr1.models.diffusers_backbone import DTYPES

        model.denoiser.to(DTYPES[base_dtype])
    if isinstance(model, EmbeddedT2I):
        raise ConfigError(
            f"{cfg.backbone.path} is an embedded checkpoint: train embedded students with init=<student> "
            "(backbone.path is for diffusers pipelines: sd3, zimage)"
        )
    sigmas, solver = schedule_of(model, 4, 3.0)
    return model, SamplingConfig(steps=len(sigmas) - 1, cfg=1.0, sampler=solver, shift=3.0)


def apply_memory_switches(model: nn.Module, cfg: RLConfig) -> None:
    """A scale config's memory switches: LoRA weights (hence their gradients, EMA and AdamW states) fp32
    over a bf16 base, and per-block gradient checkpointing that recomputes with the right role."""
    if getattr(cfg, "base_dtype", "fp32") != "fp32":
        for name, p in model.denoiser.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
    if getattr(cfg, "gradient_checkpointing", False):
        from tdmr1.models.lora.checkpointing import enable_role_checkpointing

        enable_role_checkpointing(model.denoiser)


def init_generator_adapter(model: nn.Module, roles: Roles, cfg: RLConfig) -> None:
    """The generator adapter from ``cfg.init_lora`` (the authors' order-only ``.ckpt`` or a named
    ``.safetensors``); without it every role starts fresh (= the base model)."""
    init_lora = getattr(cfg, "init_lora", None)
    if not init_lora:
        return
    if str(init_lora).endswith(".safetensors"):
        from safetensors.torch import load_file

        if not Path(init_lora).is_file():
            raise CheckpointError(f"LoRA file not found: {init_lora}")
        roles.load_adapter_state("generator", load_file(str(init_lora)))
    else:
        from tdmr1.models.lora.presets import load_ordered_adapter

        load_ordered_adapter(model.denoiser, "generator", init_lora)


def cache_prompts(model: nn.Module, prompts: list[str]) -> None:
    """Every prompt the run will encode, once; then the text encoders leave the accelerator."""
    model.cache_prompts(list(dict.fromkeys(prompts)))
    model.offload_text_encoders("cpu")


class AdapterState:
    """The LoRA weights of a scale-path denoiser (every role), without its frozen base weights."""

    def __init__(self, denoiser: nn.Module):
        self.denoiser = denoiser

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.denoiser.state_dict().items() if "lora_" in k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        result = self.denoiser.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise CheckpointError(
                f"run state does not fit the adapters (missing {missing[:2]}, unexpected {result.unexpected_keys[:2]})"
            )
