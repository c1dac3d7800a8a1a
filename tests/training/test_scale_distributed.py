"""Two gloo CPU processes: every role's adapter stays synchronised (RoleSync), 2 x batch 2 equals 1 x batch 4,
gathered advantages equal the single-process ones, and the peft set_adapter + DDP trap is real."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("diffusers")

from tdmr1.errors import ConfigError  # noqa: E402
from tdmr1.training.distributed import BatchLayout  # noqa: E402

ROLES = ("generator", "fake")


def _tiny_sd3():
    from tdmr1.models.tiny import tiny_sd3_transformer

    return tiny_sd3_transformer()


def _run(rank: int, world: int, init_file: str | None, out_dir: str) -> None:
    """One process (or the single-process reference when ``init_file`` is None)."""
    import torch.distributed as dist

    from tdmr1.models.lora.presets import lora_settings
    from tdmr1.models.lora.roles import Roles
    from tdmr1.r1.losses import group_advantages
    from tdmr1.training.distributed import RoleSync, all_reduce_grads, ddp_registered, gather_cat, shared_generator

    torch.set_num_threads(1)
    if init_file is not None:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    denoiser = _tiny_sd3()
    torch.manual_seed(100 + rank)  # LoRA A is random: different on each rank until broadcast
    roles = Roles(denoiser, list(ROLES), lora_settings("sd3-authors", rank=4, alpha=8.0))
    denoiser.set_adapter("fake")  # raw peft, as the authors do right before accelerator.prepare
    registered = ddp_registered(denoiser)
    sync = RoleSync(roles)
    sync.broadcast()
    gen = shared_generator(seed=0, step=0)
    with torch.no_grad():  # identical non-zero B on every rank (shared draws)
        for role in ROLES:
            for p in roles.parameters(role):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    g = torch.Generator().manual_seed(7)  # the iteration's global batch of 4, same everywhere
    x, target = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t, enc, pooled = (
        torch.rand(4, generator=g) * 1000,
        torch.randn(4, 6, 32, generator=g),
        torch.randn(4, 16, generator=g),
    )
    rewards, group = torch.rand(4, generator=g), torch.tensor([0, 0, 1, 1])
    layout = BatchLayout(group_size=2, groups=2, processes=world, per_device_batch=4 // world, rank=rank)
    rows = layout.rows()
    losses = {}
    for role in ROLES:
        with roles.use(role):
            v = denoiser(
                hidden_states=x[rows],
                timestep=t[rows],
                encoder_hidden_states=enc[rows],
                pooled_projections=pooled[rows],
            ).sample
        loss = (v - target[rows]).pow(2).mean()
        loss.backward()
        all_reduce_grads(roles.parameters(role))  # what the trainer does after a role's backward
        with torch.no_grad():
            for p in roles.parameters(role):
                p.sub_(1.0 * p.grad)
                p.grad = None
        losses[role] = float(gather_cat(loss.detach().reshape(1)).mean())
    adv = group_advantages(layout.gather_rows(rewards[rows]), group)
    out = {
        "params": {role: [p.detach().clone() for p in roles.parameters(role)] for role in ROLES},
        "losses": losses,
        "adv": adv,
        "registered": registered,
        "divergence": {role: sync.max_divergence(role) for role in ROLES},
    }
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    if init_file is not None:
        dist.destroy_process_group()


@pytest.mark.slow  # ~30 s of CPU, over a minute of wall time on 2 busy cores (two fresh interpreters)
def test_two_gloo_processes_keep_every_role_in_sync(tmp_path):
    torch.multiprocessing.spawn(_run, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = tmp_path / "single"
    single.mkdir()
    _run(0, 1, None, str(single))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    ref = torch.load(single / "rank0.pt")
    # the trap: after set_adapter("fake"), only fake's parameters would be registered by a DDP wrap
    assert r0["registered"] and all(".fake." in n for n in r0["registered"])
    for role in ROLES:
        assert r0["divergence"][role] == 0.0
        for a, b, c in zip(r0["params"][role], r1["params"][role], ref["params"][role], strict=True):
            assert torch.equal(a, b)  # identical on both ranks
            torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-5)  # 2 x batch 2 == 1 x batch 4
        assert r0["losses"][role] == pytest.approx(ref["losses"][role], rel=1e-5)
    assert torch.equal(r0["adv"], r1["adv"])
    torch.testing.assert_close(r0["adv"], ref["adv"])


def test_batch_layout_errors():
    layout = BatchLayout(group_size=24, groups=48, processes=8, per_device_batch=12)
    assert layout.images == 1152 and layout.images_per_process == 144 and layout.micro_batches == 12
    assert layout.share == 3 and layout.minibatch_groups == 4
    rows = layout.rows(1)  # 3 images of every group
    assert len(rows) == 144 and rows[:6].tolist() == [3, 4, 5, 27, 28, 29]
    every = torch.cat([layout.rows(r) for r in range(8)])
    assert sorted(every.tolist()) == list(range(1152))
    full = torch.arange(1152.0)
    local = [BatchLayout(24, 48, 8, 12, rank=r).mine(full) for r in range(8)]
    assert torch.equal(torch.stack([x.reshape(48, 3) for x in local], 1).flatten(), full)  # a partition
    with pytest.raises(ConfigError, match="group_size 5 does not split evenly over 2 processes"):
        BatchLayout(group_size=5, groups=3, processes=2, per_device_batch=1)
    with pytest.raises(ConfigError, match="per_device_batch 10 is not a multiple of 3"):
        BatchLayout(group_size=24, groups=48, processes=8, per_device_batch=10)
    with pytest.raises(ConfigError, match="does not divide the 40 groups"):
        BatchLayout(group_size=24, groups=40, processes=8, per_device_batch=9)
