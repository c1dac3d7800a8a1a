"""Gradient checkpointing that is correct with LoRA roles: each block is recomputed with the adapters of its
forward, not those active at ``backward()`` (why plain checkpointing fails: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def _lora_layers(module: nn.Module) -> list[nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def _adapter_state(layers: list[nn.Module]) -> list[tuple[Any, bool]]:
    return [(m._active_adapter, m._disable_adapters) for m in layers]


def _set_adapter_state(layers: list[nn.Module], state: list[tuple[Any, bool]]) -> None:
    for m, (active, disabled) in zip(layers, state, strict=True):
        m._active_adapter, m._disable_adapters = active, disabled


def role_checkpoint(block: nn.Module, *args: Any) -> Any:
    """``torch.utils.checkpoint`` of ``block(*args)`` whose recomputation uses the adapters active now."""
    layers = _lora_layers(block)
    at_forward = _adapter_state(layers)

    def run(*inner: Any) -> Any:
        current = _adapter_state(layers)
        _set_adapter_state(layers, at_forward)
        try:
            return block(*inner)
        finally:
            _set_adapter_state(layers, current)

    return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)


def enable_role_checkpointing(denoiser: nn.Module) -> None:
    """Turn on diffusers' per-block gradient checkpointing of ``denoiser`` with :func:`role_checkpoint`."""
    enable: Callable[..., None] | None = getattr(denoiser, "enable_gradient_checkpointing", None)
    if enable is None:
        from tdmr1.errors import ConfigError

        raise ConfigError(f"{type(denoiser).__name__} has no gradient checkpointing (not a diffusers model)")
    enable(gradient_checkpointing_func=role_checkpoint)
