"""Roles on one backbone: named peft LoRA adapters (``generator``, ``fake``, ``surrogate``, ...) over a frozen base
denoiser (adapters off: ``base``), e.g. ``with roles.use("fake"): v = model(x, s, text)``; any diffusers model
with peft support."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from tdmr1.config import option
from tdmr1.errors import CheckpointError, ConfigError

BASE = "base"

#: Layers that get LoRA in the embedded UNet: convolutions carry most of its capacity.
UNET_TARGETS: tuple[str, ...] = (
    "conv1",
    "conv2",
    "conv_shortcut",
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "time_emb_proj",
)
#: Layers that get LoRA in diffusers transformers (SD3.5, Z-Image, Flux-like blocks).
TRANSFORMER_TARGETS: tuple[str, ...] = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
)


@dataclass
class LoraSettings:
    """LoRA shape shared by every role (the authors: r32 / alpha64 on SD3.5-M)."""

    rank: int = option(32, "LoRA rank")
    alpha: float = option(64.0, "LoRA alpha (scale = alpha / rank)")
    target_modules: tuple[str, ...] = option(UNET_TARGETS, "module names that get adapters")

    def validate(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora.rank must be >= 1, got {self.rank}")

    def peft_config(self) -> LoraConfig:
        return LoraConfig(
            r=self.rank, lora_alpha=self.alpha, target_modules=list(self.target_modules), init_lora_weights=True
        )


class Roles:
    """Named LoRA adapters on ``denoiser``; the base weights are frozen."""

    def __init__(self, denoiser: nn.Module, names: Sequence[str], lora: LoraSettings | Mapping[str, LoraSettings]):
        """``lora``: one adapter shape for every role, or one per role name (e.g. attention-only surrogate)."""
        if BASE in names:
            raise ConfigError(f"'{BASE}' is the adapters-off backbone, not an adapter name")
        self.denoiser = denoiser
        self.names = list(names)
        self.lora = {n: lora for n in self.names} if isinstance(lora, LoraSettings) else dict(lora)
        if missing := [n for n in self.names if n not in self.lora]:
            raise ConfigError(f"no LoRA settings for roles {missing}")
        denoiser.requires_grad_(False)
        with warnings.catch_warnings():  # peft warns on every adapter after the first; several are the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            for name in self.names:
                denoiser.add_adapter(self.lora[name].peft_config(), adapter_name=name)
        self._params = {n: [p for k, p in denoiser.named_parameters() if f".{n}." in k] for n in self.names}
        for name in self.names:
            for p in self._params[name]:
                p.requires_grad_(True)
        self._active = BASE
        self._activate(BASE)

    def _activate(self, name: str) -> None:
        if name == BASE:
            self.denoiser.disable_adapters()
        else:
            if name not in self._params:
                raise ConfigError(f"unknown role {name!r} (known: {BASE}, {', '.join(self.names)})")
            self.denoiser.enable_adapters()
            self.denoiser.set_adapter(name)
        # peft toggles requires_grad on set_adapter; every adapter stays trainable by its own optimiser
        for params in self._params.values():
            for p in params:
                p.requires_grad_(True)
        self._active = name

    @property
    def active(self) -> str:
        return self._active

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[None]:
        """Run the backbone as role ``name`` inside the block (``base`` = adapters off); no switch when
        ``name`` is already active."""
        previous = self._active
        if name == previous:
            yield
            return
        self._activate(name)
        try:
            yield
        finally:
            self._activate(previous)

    def parameters(self, name: str) -> list[nn.Parameter]:
        if name not in self._params:
            raise ConfigError(f"unknown role {name!r} (known: {', '.join(self.names)})")
        return self._params[name]

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        """The adapter's weights with role-independent keys (peft's format)."""
        self.parameters(name)
        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.denoiser, adapter_name=name).items()}

    def load_adapter_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Load peft-format adapter weights into role ``name`` (e.g. copy the generator into another role)."""
        self.parameters(name)
        expected = set(get_peft_model_state_dict(self.denoiser, adapter_name=name))
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise CheckpointError(
                f"adapter weights do not fit role {name!r} (missing {missing[:2]}, unexpected {extra[:2]})"
            )
        own = get_peft_model_state_dict(self.denoiser, adapter_name=name)
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise CheckpointError(
                    f"adapter weight {key} has shape {tuple(value.shape)}, role {name!r} expects "
                    f"{tuple(own[key].shape)} (is lora.rank the adapter's own?)"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"adapter weight {key} holds NaN or infinite values: refusing to train from it")
        result = set_peft_model_state_dict(self.denoiser, state, adapter_name=name)
        if getattr(result, "unexpected_keys", None):
            raise CheckpointError(f"adapter weights for {name!r} have unexpected keys {result.unexpected_keys[:2]}")

    @torch.no_grad()
    def lerp_into(self, src: str, dst: str, decay: float) -> None:
        """dst <- decay * dst + (1 - decay) * src, parameter by parameter (an EMA copy kept as a role)."""
        dst_by_key = {self._key(k, dst): p for k, p in self._named(dst)}
        for key, p in self._named(src):
            dst_by_key[self._key(key, src)].lerp_(p.detach(), 1.0 - decay)

    def _named(self, name: str) -> list[tuple[str, nn.Parameter]]:
        return [(k, p) for k, p in self.denoiser.named_parameters() if f".{name}." in k]

    @staticmethod
    def _key(param_name: str, role: str) -> str:
        return param_name.replace(f".{role}.", ".<role>.")

    def merged_state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """Plain denoiser weights (no adapters) equal to base + role ``name`` merged."""
        self.parameters(name)
        clone = copy.deepcopy(self.denoiser)
        for module in clone.modules():
            if isinstance(module, BaseTunerLayer):
                module.merge(adapter_names=[name])
        out = {}
        for key, value in clone.state_dict().items():
            if "lora_" in key:
                continue
            out[key.replace(".base_layer.", ".")] = value
        return out
