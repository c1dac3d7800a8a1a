"""Gradient checkpointing with LoRA roles: the trainers run a role's forward inside ``roles.use(...)`` and call
``backward()`` after it; the recomputation must use that role's adapters, not the ones active at backward."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from tdmr1.models.lora.checkpointing import enable_role_checkpointing  # noqa: E402
from tdmr1.models.lora.presets import lora_settings  # noqa: E402
from tdmr1.models.lora.roles import Roles  # noqa: E402
from tdmr1.models.tiny import tiny_sd3_transformer  # noqa: E402


def _grads(checkpointing: str, active_at_backward: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss of role ``fake`` (forward in ``use("fake")``) and its adapter gradients, backward with another
    role (or the base) active."""
    model = tiny_sd3_transformer(seed=0)
    roles = Roles(model, ["generator", "fake"], lora_settings("sd3-authors", rank=4))
    torch.manual_seed(1)
    with torch.no_grad():  # distinct, non-zero adapters: a wrong role in the recomputation changes the grads
        for p in roles.parameters("generator") + roles.parameters("fake"):
            p.normal_(0, 0.3)
    if checkpointing == "role":
        enable_role_checkpointing(model)
    elif checkpointing == "plain":
        model.enable_gradient_checkpointing()
    model.train()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    text = torch.randn(2, 5, 32, generator=gen)
    pooled = torch.randn(2, 16, generator=gen)
    with roles.use("fake"):
        out = model(x, timestep=torch.tensor([500.0, 250.0]), encoder_hidden_states=text, pooled_projections=pooled)
    loss = out.sample.pow(2).mean()
    with roles.use(active_at_backward):
        loss.backward()
    return loss.detach(), [p.grad.clone() for p in roles.parameters("fake")]


@pytest.mark.parametrize("active_at_backward", ["base", "generator"])
def test_role_checkpointing_matches_no_checkpointing(active_at_backward):
    ref_loss, ref = _grads("none", active_at_backward)
    loss, grads = _grads("role", active_at_backward)
    assert torch.equal(loss, ref_loss)
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads)


def test_plain_checkpointing_recomputes_with_the_wrong_role():
    """Why role checkpointing exists: diffusers' plain checkpointing fails (adapters off at backward) or
    gives other gradients (another role active at backward)."""
    with pytest.raises(Exception, match="different number of tensors"):
        _grads("plain", "base")
    _, ref = _grads("none", "generator")
    _, wrong = _grads("plain", "generator")
    assert any(not torch.allclose(g, r, rtol=1e-3, atol=1e-6) for g, r in zip(wrong, ref, strict=True))
