"""Run a LoRA role at the cost of the plain base network: merged, adapter-free copies of the denoiser, re-merged
when weights change, with grad forwards through the merged weights (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn

from tdmr1.models.lora.roles import BASE, Roles

Key = tuple[tuple[int, int], ...]


def plain_copy(denoiser: nn.Module) -> nn.Module:
    """A deep copy of ``denoiser`` with every peft tuner layer replaced by its base layer (no adapters)."""
    plain = copy.deepcopy(denoiser)
    for name, module in list(plain.named_modules()):
        if isinstance(module, BaseTunerLayer) and name:
            parent_name, _, child = name.rpartition(".")
            parent = plain.get_submodule(parent_name) if parent_name else plain
            setattr(parent, child, module.get_base_layer())
    if hasattr(plain, "peft_config"):
        del plain.peft_config
    if hasattr(plain, "_hf_peft_config_loaded"):
        plain._hf_peft_config_loaded = False
    return plain.requires_grad_(False)


def _plain_lora_layer(layer: nn.Module, role: str) -> bool:
    """Whether ``role`` on ``layer`` is vanilla LoRA that merges into the weight alone."""
    if role in getattr(layer, "lora_variant", {}) or layer.lora_bias.get(role, False):
        return False
    if not isinstance(layer.lora_dropout[role], nn.Identity):
        return False
    return getattr(layer.get_base_layer(), "groups", 1) == 1


def _like(param: Tensor, value: Tensor) -> Tensor:
    """``value`` with ``param``'s strides (differentiable): the copies' layout, so that the kernels chosen
    match the no-grad path's and a zero adapter gives the base's output bit for bit."""
    if value.stride() == param.stride():
        return value
    return torch.empty_strided(param.shape, param.stride(), dtype=param.dtype, device=param.device).copy_(value)


class MergedRoles:
    """Plain, merged copies of ``roles.denoiser``: one per role used under no-grad, one base copy for grads."""

    def __init__(self, roles: Roles, channels_last: bool = True):
        self.roles = roles
        self.channels_last = channels_last
        live = roles.denoiser
        self._layers = {n: m for n, m in live.named_modules() if isinstance(m, BaseTunerLayer) and n}
        # every non-adapter tensor of the live model, named as in the plain copy
        self._base = {k.replace(".base_layer.", "."): p for k, p in live.named_parameters() if "lora_" not in k}
        self._copies: dict[str, tuple[Key | None, nn.Module]] = {}
        self._template: nn.Module | None = None
        self._supported: dict[str, bool] = {}
        self.merges = 0  # how many times a copy was (re-)merged: for tests and benchmarks

    # ---- what can run merged ---------------------------------------------------------------------
    def supports(self, role: str) -> bool:
        """Whether ``role``'s adapter is plain LoRA on every layer it touches (else run it live)."""
        if role not in self._supported:
            layers = [m for m in self._layers.values() if role in m.lora_A]
            self._supported[role] = role == BASE or all(_plain_lora_layer(m, role) for m in layers)
        return self._supported[role]

    # ---- copies --------------------------------------------------------------------------------
    def _new_copy(self) -> nn.Module:
        if self._template is None:
            self._template = plain_copy(self.roles.denoiser)
            if self.channels_last:
                self._template.to(memory_format=torch.channels_last)
        return copy.deepcopy(self._template)

    def _key(self, role: str) -> Key:
        params = list(self._base.values()) + ([] if role == BASE else self.roles.parameters(role))
        return tuple((p._version, p.data_ptr()) for p in params)

    def invalidate(self) -> None:
        """Forget every merge (after writes the version counters cannot see, e.g. through ``.data``)."""
        self._copies = {role: (None, net) for role, (_, net) in self._copies.items()}

    def deltas(self, role: str) -> dict[str, Tensor]:
        """``W + delta(role)`` of every LoRA layer ``role`` adapts, by plain parameter name (differentiable
        in the adapter weights when grad is enabled)."""
        if role == BASE:
            return {}
        return {
            f"{name}.weight": layer.get_base_layer().weight + layer.get_delta_weight(role)
            for name, layer in self._layers.items()
            if role in layer.lora_A
        }

    @torch.no_grad()
    def _merge_into(self, net: nn.Module, role: str) -> None:
        params = dict(net.named_parameters())
        for name, live in self._base.items():
            params[name].copy_(live)
        for name, merged in self.deltas(role).items():
            params[name].copy_(merged)
        self.merges += 1

    def network(self, role: str) -> nn.Module:
        """The plain copy holding base + ``role`` merged, re-merged if the weights changed since."""
        key = self._key(role)
        stored_key, net = self._copies.get(role, (None, None))
        if net is None:
            net = self._new_copy()
        if stored_key != key:
            self._merge_into(net, role)
            self._copies[role] = (key, net)
        return net

    # ---- running -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module, net: nn.Module) -> Iterator[nn.Module]:
        """``model`` with its ``denoiser`` replaced by ``net`` inside the block."""
        live = model.denoiser
        model.denoiser = net
        try:
            yield model
        finally:
            model.denoiser = live

    def call(self, model: nn.Module, role: str, grad: bool, *args, **kwargs) -> Tensor:
        """``model(*args)`` with its denoiser running as ``role`` on a plain copy.

        ``grad=False``: the cached merged copy of ``role``. ``grad=True``: the base copy with the merged
        weights passed functionally, so that the graph reaches the adapter's parameters."""
        if not grad or role == BASE:
            with self.swapped_in(model, self.network(role)):
                return model(*args, **kwargs)
        net = self.network(BASE)
        weights = {f"denoiser.{k}": _like(net.get_parameter(k), v) for k, v in self.deltas(role).items()}
        with self.swapped_in(model, net):
            return torch.func.functional_call(model, weights, args, kwargs, strict=False)
