"""Gradient checkpointing that is correct with LoRA roles (:class:`tdmr1.models.lora.roles.Roles`).

Roles switch the active peft adapter of the whole denoiser (``roles.use("fake")``) around each forward,
and the trainers call ``backward()`` after the ``use`` block has ended. Plain activation checkpointing
(``denoiser.enable_gradient_checkpointing()``) recomputes each block's forward *during* backward, i.e.
with whatever adapter is active then (usually none: the base). The recomputation then runs a different
graph: torch's non-reentrant checkpoint fails ("A different number of tensors was saved during the
original forward and recomputation") when adapters were switched off, and when another LoRA role of the
same shape is active it would silently use that role's weights.

:func:`enable_role_checkpointing` passes diffusers a checkpoint function that records every LoRA layer's
adapter state of the block at forward time (peft's ``_active_adapter`` / ``_disable_adapters``) and
restores exactly that state around the recomputation, without touching ``requires_grad`` (Roles keeps
every adapter trainable).
"""

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
