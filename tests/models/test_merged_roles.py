"""Merged role copies (tdmr1.models.lora.merged_roles, FewStepSystem.fast_roles): the same function as the live peft
model for every role, with and without grad, and never stale after the adapter changes."""

from __future__ import annotations

import pytest
import torch

from tdmr1.config import load_config
from tdmr1.errors import ConfigError
from tdmr1.models.lora.roles import LoraSettings
from tdmr1.tdm.system import FewStepSystem
from tdmr1.teacher.pretrain import PretrainConfig, build_model

ROLES = ["generator", "fake", "surrogate", "surrogate_old"]
ATOL = 1e-5


@pytest.fixture
def system(tiny_backbone_overrides) -> FewStepSystem:
    torch.manual_seed(0)
    model = build_model(load_config(PretrainConfig, None, tiny_backbone_overrides))
    sys_ = FewStepSystem(model, ROLES, LoraSettings(rank=4, alpha=8.0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-zero adapters, different per role
        for role in ROLES:
            for p in sys_.roles.parameters(role):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return sys_


def _inputs(sys_: FewStepSystem, n: int = 3):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn((n, *sys_.model.image_shape), generator=gen)
    s = torch.rand(n, generator=gen)
    return x, s, sys_.encode(["a red circle", "two blue squares", ""][:n])


def _velocity(sys_: FewStepSystem, fast: bool, role: str, x, s, text) -> torch.Tensor:
    sys_.set_fast_roles(fast)
    with torch.no_grad():
        return sys_.velocity(role, x, s, text)


@pytest.mark.parametrize("role", ["base", *ROLES])
def test_merged_no_grad_forward_equals_live(system, role):
    x, s, text = _inputs(system)
    live = _velocity(system, False, role, x, s, text)
    merged = _velocity(system, True, role, x, s, text)
    assert torch.allclose(merged, live, atol=ATOL), (merged - live).abs().max()
    if role != "base":  # the adapter is really in the merged weights
        assert not torch.allclose(live, _velocity(system, False, "base", x, s, text), atol=1e-3)


@pytest.mark.parametrize("role", ROLES)
def test_merged_grad_forward_gives_the_live_gradients(system, role):
    x, s, text = _inputs(system)
    grads = {}
    for fast in (False, True):
        system.set_fast_roles(fast)
        params = system.roles.parameters(role)
        xg = x.clone().requires_grad_(True)
        for p in params:
            p.grad = None
        system.velocity(role, xg, s, text).pow(2).mean().backward()
        grads[fast] = [p.grad.clone() for p in params] + [xg.grad]
    for merged, live in zip(grads[True], grads[False], strict=True):
        assert torch.allclose(merged, live, atol=ATOL, rtol=1e-4), (merged - live).abs().max()


def test_merged_copy_is_refreshed_after_an_optimizer_step(system):
    x, s, text = _inputs(system)
    before = _velocity(system, True, "fake", x, s, text)
    merges = system.merged.merges
    _velocity(system, True, "fake", x, s, text)
    assert system.merged.merges == merges  # unchanged adapter: the copy is reused, not re-merged
    opt = torch.optim.AdamW(system.roles.parameters("fake"), lr=1e-2)
    system.set_fast_roles(False)
    system.velocity("fake", x, s, text).pow(2).mean().backward()
    opt.step()
    after = _velocity(system, True, "fake", x, s, text)
    assert system.merged.merges == merges + 1
    assert not torch.allclose(after, before, atol=1e-4)  # a stale copy would still give `before`
    assert torch.allclose(after, _velocity(system, False, "fake", x, s, text), atol=ATOL)


def test_merged_copy_follows_lerp_load_and_writes_through_data(system):
    x, s, text = _inputs(system)
    roles = system.roles
    _velocity(system, True, "surrogate_old", x, s, text)
    roles.lerp_into("surrogate", "surrogate_old", 0.5)  # the lagging surrogate's update
    live = _velocity(system, False, "surrogate_old", x, s, text)
    assert torch.allclose(_velocity(system, True, "surrogate_old", x, s, text), live, atol=ATOL)
    roles.load_adapter_state("generator", roles.adapter_state("fake"))
    live = _velocity(system, False, "generator", x, s, text)
    assert torch.allclose(_velocity(system, True, "generator", x, s, text), live, atol=ATOL)
    for p in roles.parameters("fake"):  # invisible to version counters: invalidate() is the documented way
        p.data.mul_(0.0)
    system.merged.invalidate()
    assert torch.allclose(
        _velocity(system, True, "fake", x, s, text), _velocity(system, False, "base", x, s, text), atol=ATOL
    )


def test_zero_adapter_is_bit_identical_to_base_when_merged(system):
    x, s, text = _inputs(system)
    with torch.no_grad():
        for p in system.roles.parameters("surrogate"):
            p.zero_()
    base = _velocity(system, True, "base", x, s, text)
    assert torch.equal(_velocity(system, True, "surrogate", x, s, text), base)
    assert torch.equal(system.velocity("surrogate", x, s, text).detach(), base)  # the grad path too


def test_rollout_uses_the_merged_generator(system):
    x, _, text = _inputs(system)
    system.set_fast_roles(False)
    live = system.rollout(text, x).final
    system.set_fast_roles(True)
    merges = system.merged.merges
    merged = system.rollout(text, x).final
    assert system.merged.merges == merges + 1
    assert torch.allclose(merged, live, atol=1e-4)


def test_forward_hooks_on_the_live_model_force_the_live_path(system):
    x, s, text = _inputs(system)
    seen = []
    handle = system.model.denoiser.mid_block.register_forward_hook(lambda *a: seen.append(1))
    try:
        _velocity(system, True, "base", x, s, text)
    finally:
        handle.remove()
    assert seen == [1]


def test_same_role_use_does_not_switch_adapters(system, monkeypatch):
    calls = []
    activate = system.roles._activate
    monkeypatch.setattr(system.roles, "_activate", lambda name: (calls.append(name), activate(name)))
    with system.roles.use("fake"), system.roles.use("fake"):
        pass
    assert calls == ["fake", "base"]


def test_a_non_boolean_switch_is_refused(system):
    with pytest.raises(ConfigError, match="fast_roles"):
        system.set_fast_roles("sometimes")
