"""Several processes (GPUs) for TDM-R1: every role's adapter synchronised, shared draws, gathered groups.

How roles are wrapped. All roles are peft adapters on *one* denoiser, and each has its own optimiser.
Wrapping that denoiser in ``DistributedDataParallel`` (what ``accelerator.prepare(model)`` does) is a
trap: DDP registers, once and for all when it wraps, only the parameters that ``requires_grad`` at that
moment, and peft's ``set_adapter(name)`` switches ``requires_grad`` off for every other adapter. The
authors call ``set_adapter("dgpo")`` right before ``prepare``, so only that adapter is all-reduced and
the other roles silently drift apart on each GPU (reproduced in ``tests/test_scale_distributed.py``). DDP
also assumes one forward/backward per step over a fixed parameter set, while an iteration here runs
several roles, some without grad, in one graph.

So the denoiser is **not** wrapped. Each process holds the full backbone (``model.to(accelerator.device)``),
and after a role's backward (all micro-batches accumulated) :meth:`RoleSync.all_reduce` averages that
role's gradients over processes in flattened buckets, right before its optimiser step; at start
:meth:`RoleSync.broadcast` copies every role's adapter from rank 0 (LoRA A matrices are random). Only
adapter gradients travel (18.8 M floats per role on SD3.5-M). This works under ``accelerate launch`` or
``torchrun`` alike: both create the default ``torch.distributed`` process group that is used here;
with one process everything is a no-op.

Randomness: draws that must agree across ranks (tau, the step index k, the per-group noise of the
surrogate target) come from :func:`shared_generator` (same seed and step on every rank); per-image
rollout noise comes from a rank-specific one. Groups may span ranks: rewards are all-gathered
(:func:`gather_cat`) before advantages and Bradley-Terry group sums are computed, so they equal the
single-process ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from tdmr1.errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _buckets(params: Sequence[nn.Parameter], bucket_elems: int) -> Iterable[list[nn.Parameter]]:
    bucket: list[nn.Parameter] = []
    size = 0
    for p in params:
        bucket.append(p)
        size += p.numel()
        if size >= bucket_elems:
            yield bucket
            bucket, size = [], 0
    if bucket:
        yield bucket


@torch.no_grad()
def all_reduce_grads(params: Sequence[nn.Parameter], bucket_elems: int = 2**24) -> None:
    """Average the gradients of ``params`` over all processes (missing grads count as zeros)."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for bucket in _buckets(list(params), bucket_elems):
        for p in bucket:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for p in bucket:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


@torch.no_grad()
def broadcast_params(params: Sequence[nn.Parameter], src: int = 0) -> None:
    """Copy ``params`` from rank ``src`` to every process."""
    if not is_distributed():
        return
    for p in params:
        dist.broadcast(p.data, src=src)


def gather_cat(t: Tensor) -> Tensor:
    """Concatenate an equally shaped tensor from every process along dim 0, in rank order."""
    if not is_distributed():
        return t
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out)


def shared_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator that yields the same draws on every rank for iteration ``step``."""
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(step))


def rank_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator that differs per rank (per-image rollout noise)."""
    rank, _ = rank_and_size()
    return torch.Generator(device=device).manual_seed((int(seed) * 1_000_003 + int(step)) * 4099 + rank)


class RoleSync:
    """Keeps every role's adapter identical on all processes (see the module docstring)."""

    def __init__(self, roles, names: Sequence[str] | None = None):
        self.roles = roles
        self.names = list(names) if names is not None else list(roles.names)

    def broadcast(self, src: int = 0) -> None:
        for name in self.names:
            broadcast_params(self.roles.parameters(name), src)

    def all_reduce(self, name: str) -> None:
        all_reduce_grads(self.roles.parameters(name))

    @torch.no_grad()
    def max_divergence(self, name: str) -> float:
        """Largest |difference| of role ``name``'s weights between this rank and rank 0 (0 when in sync)."""
        params = self.roles.parameters(name)
        if not is_distributed() or not params:
            return 0.0
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        diff = (flat - ref).abs().max().reshape(1)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        return float(diff)


def ddp_registered(module: nn.Module) -> list[str]:
    """Names of the parameters DDP would register if ``module`` were wrapped now (those that require
    grad): after peft's ``set_adapter(x)`` only adapter ``x``'s, which is the trap described above."""
    return [n for n, p in module.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class BatchLayout:
    """How one iteration's m x G images spread over processes and per-device micro-batches."""

    group_size: int
    groups: int
    processes: int
    per_device_batch: int

    def __post_init__(self) -> None:
        for key in ("group_size", "groups", "processes", "per_device_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.images % self.processes:
            raise ConfigError(
                f"groups x group_size = {self.groups} x {self.group_size} = {self.images} images do not split "
                f"evenly over {self.processes} processes"
            )
        if self.images_per_process % self.per_device_batch:
            raise ConfigError(
                f"{self.images_per_process} images per process are not a multiple of per_device_batch "
                f"{self.per_device_batch}"
            )

    @property
    def images(self) -> int:
        return self.groups * self.group_size

    @property
    def images_per_process(self) -> int:
        return self.images // self.processes

    @property
    def micro_batches(self) -> int:
        """Gradient-accumulation steps per process and role update."""
        return self.images_per_process // self.per_device_batch

    def rows(self, rank: int) -> slice:
        """This rank's rows of the iteration's images (group-major order: groups may span ranks)."""
        n = self.images_per_process
        return slice(rank * n, (rank + 1) * n)
