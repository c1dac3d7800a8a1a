"""The TDM-R1 trainer on gloo CPU processes (the tiny embedded student): 2 processes x batch 2 = 1 process x
batch 4 (losses, advantages, every weight; exact resume), groups spanning processes train alike, and the group
Bradley-Terry weights and gradients of rows split over processes, evenly or not, equal the single-process ones."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import BRIGHTNESS_REWARD_FILE
from tdmr1.config import load_config
from tdmr1.errors import ConfigError
from tdmr1.r1.config import RLConfig, batch_layout
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.training.distributed import BatchLayout

#: 2 prompt groups x G = 2 per iteration, one group per minibatch: 1 image of each group per process. The
#: reward is dense (mean pixel value): with the shapes checker's 0/1 scores most tiny groups have zero
#: advantages, the fresh surrogate's first gradient is float rounding, and Adam's normalised step turns
#: rounding into lr-sized differences between any two batch layouts.
ARGS = [
    f"reward={BRIGHTNESS_REWARD_FILE}:Brightness",
    "lora.rank=2",
    "prompts_per_iteration=2",
    "group_size=2",
    "minibatch_groups=1",
    "val_every=0",
    "sur_rank_every=1",
    "surrogate_steps=2",
    "surrogate_replay=1",
]


def _cfg(student: Path, variant: str) -> RLConfig:
    return load_config(RLConfig, None, [f"init={student}", f"surrogate={variant}", *ARGS])


def _weights(trainer: TDMR1Trainer) -> dict[str, torch.Tensor]:
    """Every trained weight: all roles' adapters and the explicit surrogate's reward head."""
    out = {k: v.detach().clone() for k, v in trainer.model.denoiser.state_dict().items() if "lora_" in k}
    out |= {f"sur.{i}": p.detach().clone() for i, p in enumerate(trainer.surrogate.parameters())}
    return out


def _train(student: Path, variant: str, out: Path) -> dict:
    """Two iterations (advantages recorded), then the same run killed after one and resumed."""
    from tdmr1.training.distributed import max_divergence

    straight = TDMR1Trainer(_cfg(student, variant), out / "straight", quiet=True)
    advantages, rollout = [], straight.rollout

    def recorded():
        ro = rollout()
        advantages.append(straight.layout.gather_rows(ro.adv))
        return ro

    straight.rollout = recorded  # type: ignore[method-assign]
    stats = [straight.iteration() for _ in range(2)]
    params = list(straight.model.denoiser.parameters()) + list(straight.surrogate.parameters())
    divergence = max_divergence(params)
    first = TDMR1Trainer(_cfg(student, variant), out / "killed", quiet=True)
    first.iteration()
    first.save()
    del first
    torch.manual_seed(1234 + int(os.environ.get("RANK", "0")))  # a fresh process: another global RNG state
    resumed = TDMR1Trainer(_cfg(student, variant), out / "killed", quiet=True)
    assert resumed.resume() and resumed.step == 1
    resumed_stats = resumed.iteration()
    return {
        "stats": stats,
        "adv": advantages,
        "weights": _weights(straight),
        "divergence": divergence,
        "resumed_stats": resumed_stats,
        "resumed_weights": _weights(resumed),
    }


def _bradley_terry(rank: int, world: int) -> dict:
    """Group weights and loss gradients of this rank's rows (2 groups x 4 rows, 2 rows of each per rank)."""
    return _group_losses(rank, world, group_size=4, groups=2)


def _worker(rank: int, world: int, init_file: str, out_dir: str, student: str) -> None:
    import torch.distributed as dist

    os.environ["RANK"] = str(rank)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = {"bt": _bradley_terry(rank, world)}
        for variant in ("implicit", "explicit"):
            result[variant] = _train(Path(student), variant, Path(out_dir) / variant)
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


def _assert_stats_close(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if np.isnan(a[key]):
            assert np.isnan(b[key]), key
        elif exact:
            assert a[key] == b[key], key
        elif key != "reward_dir_norm":  # a square root of a mean: the average of per-process roots differs
            assert a[key] == pytest.approx(b[key], rel=5e-3, abs=1e-5), key


def _share_moved(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], by: float) -> float:
    """Share of all trained weight elements that differ by more than ``by``."""
    moved = sum(int(((a[k] - b[k]).abs() > by).sum()) for k in a)
    return moved / sum(v.numel() for v in a.values())


@pytest.mark.slow  # two fresh interpreters, six trainers: 7-9 min of wall time on the shared 2-core machine
def test_two_processes_train_like_one_with_the_whole_batch(tiny_student, tmp_path):
    """Tolerances: a batch of 2 and one of 4 round differently in the convolutions, the images are uint8
    (a pixel may flip: advantages differ by ~1e-4), and Adam's first steps are ~lr x sign(gradient), so an
    element whose true gradient is 0 (e.g. the reward head's output bias: advantages sum to 0 per group)
    moves by +-lr on rounding noise in any two runs that reduce differently. A wrong row, draw or group sum
    moves a large share of the elements by ~2 lr (>= 1.5e-4 for every role here)."""
    student = str(tiny_student)
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), student), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    bt = _bradley_terry(0, 1)
    for key in bt:  # group weights, losses and gradients of rows split over processes
        torch.testing.assert_close(r0["bt"][key], bt[key], rtol=1e-5, atol=1e-7)
    for variant in ("implicit", "explicit"):
        a, b = r0[variant], r1[variant]
        single = _train(Path(student), variant, tmp_path / f"single-{variant}")
        assert a["divergence"] == 0.0
        for key, w in a["weights"].items():
            assert torch.equal(w, b["weights"][key]), key  # identical on both ranks
        assert _share_moved(a["weights"], single["weights"], 1e-4) < 0.01  # 2 x batch 2 == 1 x batch 4
        for s_a, s_b, s_1 in zip(a["stats"], b["stats"], single["stats"], strict=True):
            _assert_stats_close(s_a, s_b, exact=True)
            _assert_stats_close(s_a, s_1, exact=False)
        for adv_a, adv_1 in zip(a["adv"], single["adv"], strict=True):
            torch.testing.assert_close(adv_a, adv_1, rtol=0, atol=1e-3)
        # resume of the two-process run is exact
        _assert_stats_close(a["stats"][1], a["resumed_stats"], exact=True)
        for key, w in a["weights"].items():
            assert torch.equal(w, a["resumed_weights"][key]), key


def test_layout_of_a_config_and_its_errors(tiny_student):
    cfg = _cfg(tiny_student, "implicit")
    one = batch_layout(cfg, 0, 1)
    assert one.minibatch_groups == 1 and one.per_device_batch == 2 and one.rows().tolist() == [0, 1, 2, 3]
    two = batch_layout(cfg, 1, 2)
    assert two.minibatch_groups == 1 and two.per_device_batch == 1 and two.rows().tolist() == [1, 3]
    full = torch.arange(4.0)
    assert torch.equal(two.mine(full), torch.tensor([1.0, 3.0]))
    with pytest.raises(ConfigError, match="group_size 2 does not split evenly over 4 processes"):
        batch_layout(cfg, 0, 4)


#: groups span processes: G = 3 on 2 processes, 2 prompts in one micro-batch of 6 images, 3 a process
SPAN_ARGS = [*ARGS, "group_size=3", "minibatch_groups=2"]


def _span_iteration(student: Path, out: Path) -> dict:
    """One iteration of the implicit variant with ``SPAN_ARGS``: gathered advantages, stats, trained weights."""
    cfg = load_config(RLConfig, None, [f"init={student}", "surrogate=implicit", *SPAN_ARGS])
    trainer = TDMR1Trainer(cfg, out, quiet=True)
    rollout, advantages = trainer.rollout, []

    def recorded():
        ro = rollout()
        advantages.append(trainer.layout.gather_rows(ro.adv))
        return ro

    trainer.rollout = recorded  # type: ignore[method-assign]
    stats = trainer.iteration()
    return {"stats": stats, "adv": advantages[0], "weights": _weights(trainer), "spans": trainer.layout.spans}


def _group_losses(rank: int, world: int, group_size: int = 6, groups: int = 6) -> dict:
    """Group weights and loss gradients of this rank's rows of ``groups`` groups of ``group_size`` rows, one
    micro-batch (default: 6 x 6 on 4 processes, 9 rows a process: groups 1 and 4 lie 3 rows on each of two
    ranks, the others on one); gradients are averaged over processes, so this rank's share is grad / world."""
    from tdmr1.r1.losses import bt_group_weights, explicit_regression_loss, explicit_surrogate_loss, surrogate_loss
    from tdmr1.training.distributed import mean_over_ranks

    n = group_size * groups
    layout = BatchLayout(group_size, groups, processes=world, per_device_batch=n // world, rank=rank)
    g = torch.Generator().manual_seed(5)
    d, d_ref, adv, r, w = (torch.rand(n, generator=g) for _ in range(5))
    group = torch.arange(groups).repeat_interleave(group_size)
    d, d_ref, adv, r, w, group = (layout.mine(t) for t in (d, d_ref, adv, r, w, group))
    d.requires_grad_(True)
    r.requires_grad_(True)
    weights = bt_group_weights(adv, d, d_ref, group, 2.0, layout.group_reduce)
    loss, _ = surrogate_loss(d, d_ref, adv, group, 2.0, group_reduce=layout.group_reduce)
    loss_r = explicit_surrogate_loss(r, adv, group, 2.0, layout.group_reduce)
    r_mse = r.detach().clone().requires_grad_(True)
    mse = explicit_regression_loss(r_mse, adv, group, w, layout.group_reduce)
    (loss + loss_r + mse).backward()
    return {
        "weights": layout.gather_rows(weights),
        "grad_d": layout.gather_rows(d.grad) / world,
        "grad_r": layout.gather_rows(r.grad) / world,
        "grad_mse": layout.gather_rows(r_mse.grad) / world,
        "loss": mean_over_ranks(loss.detach()).item(),
        "loss_r": mean_over_ranks(loss_r.detach()).item(),
        "mse": mean_over_ranks(mse.detach()).item(),
    }


def _span_worker(rank: int, world: int, init_file: str, out_dir: str, student: str | None) -> None:
    import torch.distributed as dist

    os.environ["RANK"] = str(rank)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        if student is None:
            result = _group_losses(rank, world)
        else:
            result = _span_iteration(Path(student), Path(out_dir) / "two")
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow  # four fresh interpreters: about 1.5 min of wall time on the shared 2-core machine
def test_group_sums_of_groups_spanning_processes_unevenly_equal_one_process(tmp_path):
    torch.multiprocessing.spawn(_span_worker, args=(4, str(tmp_path / "init"), str(tmp_path), None), nprocs=4)
    got = torch.load(tmp_path / "rank0.pt", weights_only=False)
    assert BatchLayout(6, 6, 4, 9).spans
    for key, want in _group_losses(0, 1).items():
        torch.testing.assert_close(got[key], want, rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # two fresh interpreters and three trainers: 4-5 min of wall time on the shared 2-core machine
def test_groups_spanning_two_processes_train_like_one(tiny_student, tmp_path):
    """G = 3 on 2 processes (3 images of 6 a process) trains one iteration like one process on the same
    batch (the tolerances of the test above)."""
    student = str(tiny_student)
    torch.multiprocessing.spawn(_span_worker, args=(2, str(tmp_path / "init"), str(tmp_path), student), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    single = _span_iteration(Path(student), tmp_path / "one")
    assert r0["spans"] and not single["spans"]
    for key, w in r0["weights"].items():
        assert torch.equal(w, r1["weights"][key]), key
    assert _share_moved(r0["weights"], single["weights"], 1e-4) < 0.01
    _assert_stats_close(r0["stats"], r1["stats"], exact=True)
    _assert_stats_close(r0["stats"], single["stats"], exact=False)
    torch.testing.assert_close(r0["adv"], single["adv"], rtol=0, atol=1e-3)
