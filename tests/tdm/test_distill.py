"""TDM distillation: losses by hand, zero direction when fake = teacher, a tiny run, role isolation."""

from __future__ import annotations

import pytest
import torch

from tdmr1.config import load_config
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.models.lora.roles import LoraSettings
from tdmr1.tdm.distill import DistillConfig, distill
from tdmr1.tdm.losses import direction_loss, dmd_normaliser, fake_score_loss, flow_target_from_x0, tdm_direction
from tdmr1.tdm.system import FewStepSystem
from tdmr1.tdm.system_losses import generator_loss


def test_losses_match_hand_computation():
    x0_hat = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    direction = torch.tensor([[0.5, -0.5], [1.0, 1.0]])
    ref = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    w = dmd_normaliser(x0_hat, ref)  # per-sample mean |x0_hat - ref| = [1.5, 0.5]
    assert torch.allclose(w, torch.tensor([1.5, 0.5]))
    loss = direction_loss(x0_hat, direction, w)
    # per sample: mean(direction^2) / w = [0.25/1.5, 1/0.5]; batch mean
    assert loss.item() == pytest.approx((0.25 / 1.5 + 1.0 / 0.5) / 2)
    loss.backward()
    # d/dx0_hat of mean_n(mean_d((x - sg(x + d))^2) / w_n) = -2 d / (D * w_n * N)
    expected = -2 * direction / (2 * w[:, None] * 2)
    assert torch.allclose(x0_hat.grad, expected)
    assert torch.allclose(
        tdm_direction(torch.tensor(3.0), torch.tensor(1.0), torch.tensor(2.0), 4.5), torch.tensor(1.0 + 3.5 * 2.0)
    )
    v_fake, v_t, v_b = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    assert fake_score_loss(v_fake, v_t, v_b, 0.02).item() == pytest.approx((1 + 4) / 2 + 0.02 * (0 + 4) / 2)
    x0, eps, tau = torch.randn(3, 2), torch.randn(3, 2), torch.tensor([0.2, 0.5, 0.9])
    x_tau = (1 - tau[:, None]) * x0 + tau[:, None] * eps
    assert torch.allclose(flow_target_from_x0(x_tau, x0, tau), eps - x0, atol=1e-5)


def test_direction_is_zero_when_fake_equals_teacher(tiny_teacher):
    torch.manual_seed(1)
    system = FewStepSystem(EmbeddedT2I.load(tiny_teacher), ["generator", "fake"], LoraSettings(rank=2, alpha=2))
    cond = system.encode(["a photo of a red circle", "two squares"])
    uncond = system.encode(["", ""])
    x = torch.randn(2, 3, 32, 32)
    j = torch.tensor([0, 2])
    x0_hat, x_next = system.generator_step(x, j, cond)
    loss = generator_loss(system, x0_hat, x_next, system.sigmas[j + 1], cond, uncond, cfg=1.0, huber_c=None)
    assert loss.item() == 0.0
    loss.backward()
    gen = list(system.roles.parameters("generator"))
    assert gen
    assert all(p.grad is not None for p in gen)  # the loss reaches every generator weight...
    assert all(p.grad.abs().max() == 0 for p in gen)  # ...with a zero direction
    with torch.no_grad():  # control: a fake that differs from the teacher gives the generator a gradient
        for p in system.roles.parameters("fake"):
            p.add_(0.1 * torch.randn_like(p))
    for p in gen:
        p.grad = None
    x0_hat, x_next = system.generator_step(x, j, cond)
    generator_loss(system, x0_hat, x_next, system.sigmas[j + 1], cond, uncond, cfg=1.0, huber_c=None).backward()
    assert max(p.grad.abs().max() for p in gen) > 0


def test_roles_change_outputs_only_through_the_active_adapter(tiny_teacher):
    torch.manual_seed(2)
    system = FewStepSystem(EmbeddedT2I.load(tiny_teacher), ["generator", "fake"], LoraSettings(rank=2, alpha=2))
    text = system.encode(["a photo of a cross"])
    x, s = torch.randn(1, 3, 32, 32), torch.tensor([0.7])
    base = system.velocity("base", x, s, text)
    with torch.no_grad():
        for p in system.roles.parameters("fake"):
            p.add_(0.1 * torch.randn_like(p))
    assert torch.equal(system.velocity("generator", x, s, text), base)  # generator untouched (LoRA B = 0)
    assert torch.equal(system.velocity("base", x, s, text), base)
    assert not torch.allclose(system.velocity("fake", x, s, text), base)


def test_one_tiny_distillation_run(tiny_teacher, tmp_path):
    cfg = load_config(
        DistillConfig,
        None,
        [
            f"teacher={tiny_teacher}",
            "iterations=2",
            "batch_size=4",
            "lora.rank=2",
            "checkpoint_every=1",
            "sample_every=0",
        ],
    )
    student = distill(cfg, tmp_path / "run", quiet=True)
    model = EmbeddedT2I.load(student)
    assert model.meta["sampling"]["steps"] == 4 and model.meta["sampling"]["cfg"] == 1.0
    assert (student.parent / "samples" / "step_000002.png").is_file()
    assert (student / "adapter.safetensors").is_file()
