"""Several processes (GPUs) for TDM-R1: every role's adapter synchronised without DDP, each prompt group spread
over the processes, every draw shared so that W processes compute what one does (why and how: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from tdmr1.errors import ConfigError

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


#: accelerate-launch settings this module does not implement (env var -> what it asks for)
UNSUPPORTED_ACCELERATE = {
    "ACCELERATE_USE_FSDP": "FSDP",
    "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
    "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM",
    "ACCELERATE_USE_PARALLELISM_CONFIG": "a parallelism config",
}


def check_accelerate_env(env: dict[str, str] | None = None) -> None:
    """ConfigError (one line) when ``accelerate launch`` asks for what is not run here: FSDP, DeepSpeed,
    Megatron or mixed precision (accelerate is used only to start the process group; roles are synced by
    hand, see the module docstring; precision is the config's ``backbone.mixed_precision``)."""
    env = dict(os.environ) if env is None else env
    asked = [name for key, name in UNSUPPORTED_ACCELERATE.items() if env.get(key, "").lower() in ("true", "1", "yes")]
    precision = env.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if precision not in ("", "no"):
        asked.append(f"mixed_precision={precision}")
    if asked:
        raise ConfigError(
            f"the accelerate config asks for {', '.join(asked)}, which tdmr1 train does not run: use plain "
            "multi-GPU data parallel (`accelerate config`: multi-GPU, no FSDP/DeepSpeed, mixed precision no) and "
            "set precision with backbone.mixed_precision / base_dtype"
        )


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group that ``accelerate launch`` / ``torchrun`` describe in the environment
    (``WORLD_SIZE`` > 1) through accelerate's ``PartialState``; returns this process's device (its own
    GPU when ``device`` is CUDA). A group created by the caller is used as it is; one process: ``device``.
    An accelerate config asking for FSDP, DeepSpeed or mixed precision is refused (:func:`check_accelerate_env`)."""
    check_accelerate_env()
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(cpu=device.type == "cpu")
    if is_distributed() and device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count()))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


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


def mean_over_ranks(t: Tensor) -> Tensor:
    """The average of ``t`` over processes (no gradient through the other ranks' values): a group's
    mean is the average of the ranks' means of their equal shares of it."""
    if not is_distributed():
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def _comm_device() -> torch.device:
    """Where small bookkeeping tensors travel: this process's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_stats(stats: dict[str, float]) -> dict[str, float]:
    """Logged numbers (means over this rank's equal share of rows) averaged over processes."""
    if not is_distributed() or not stats:
        return stats
    keys = sorted(stats)
    values = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    return dict(zip(keys, mean_over_ranks(values).tolist(), strict=True))


def any_rank(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (so that all take the same branch)."""
    if not is_distributed():
        return flag
    t = torch.tensor([float(flag)], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 while the others wait; every rank gets its result, or raises its exception."""
    if not is_distributed():
        return fn()
    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def shared_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator that yields the same draws on every rank for iteration ``step``."""
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(step))


class RoleSync:
    """Keeps every role's adapter identical on all processes (see the module docstring)."""

    def __init__(self, roles, names: Sequence[str] | None = None):
        self.roles = roles
        self.names = list(names) if names is not None else list(roles.names)

    def broadcast(self, src: int = 0) -> None:
        for name in self.names:
            broadcast_params(self.roles.parameters(name), src)

    def max_divergence(self, name: str) -> float:
        """Largest |difference| of role ``name``'s weights between this rank and rank 0 (0 when in sync)."""
        return max_divergence(self.roles.parameters(name))


@torch.no_grad()
def max_divergence(params: Sequence[nn.Parameter]) -> float:
    """Largest |difference| of ``params`` between this rank and rank 0, over all ranks (0 when in sync)."""
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
    """How one iteration's m x G images spread over processes and per-device micro-batches.

    Rows are numbered group-major (row g G + i is image i of group g). Every rank holds G / W rows of
    every group (``share``); a minibatch of ``minibatch_groups`` whole groups gives every rank
    ``per_device_batch`` = minibatch_groups x G / W rows, and an iteration has ``micro_batches`` of them.
    """

    group_size: int
    groups: int
    processes: int
    per_device_batch: int
    rank: int = 0

    def __post_init__(self) -> None:
        for key in ("group_size", "groups", "processes", "per_device_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.group_size % self.processes:
            raise ConfigError(
                f"group_size {self.group_size} does not split evenly over {self.processes} processes: every "
                "process holds an equal share of every prompt group, so group_size must be a multiple of the "
                "number of processes"
            )
        if self.per_device_batch % self.share:
            raise ConfigError(
                f"per_device_batch {self.per_device_batch} is not a multiple of {self.share} (group_size "
                f"{self.group_size} / {self.processes} processes): a micro-batch holds every process's share "
                "of whole prompt groups"
            )
        if self.groups % self.minibatch_groups:
            raise ConfigError(
                f"per_device_batch {self.per_device_batch} x {self.processes} processes = "
                f"{self.minibatch_groups} groups of {self.group_size} per micro-batch, which does not divide "
                f"the {self.groups} groups (prompts_per_iteration) of an iteration"
            )

    @classmethod
    def of_minibatches(cls, group_size: int, groups: int, processes: int, minibatch_groups: int, rank: int = 0):
        """The layout whose micro-batch is ``minibatch_groups`` whole groups split over the processes."""
        if group_size % processes:  # per_device_batch below would not be whole: same message
            return cls(group_size, groups, processes, group_size, rank)
        return cls(group_size, groups, processes, minibatch_groups * group_size // processes, rank)

    @property
    def share(self) -> int:
        """Rows of each prompt group on each process."""
        return self.group_size // self.processes

    @property
    def minibatch_groups(self) -> int:
        return self.per_device_batch * self.processes // self.group_size

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

    def positions(self, groups: int, rank: int | None = None) -> Tensor:
        """Rows of rank ``rank`` (default: this layout's) among ``groups`` whole groups laid out group-major."""
        rank = self.rank if rank is None else rank
        start = torch.arange(groups).unsqueeze(1) * self.group_size + rank * self.share
        return (start + torch.arange(self.share)).flatten()

    def rows(self, rank: int | None = None) -> Tensor:
        """This rank's rows of the iteration's images."""
        return self.positions(self.groups, rank)

    def mine(self, full: Tensor, dim: int = 0) -> Tensor:
        """This rank's rows (along ``dim``) of a per-row tensor that every rank holds for whole groups, such
        as a draw made for the whole batch (identity for one process)."""
        if self.processes == 1:
            return full
        index = self.positions(full.shape[dim] // self.group_size).to(full.device)
        return full.index_select(dim, index)

    def gather_rows(self, local: Tensor, dim: int = 0) -> Tensor:
        """Every rank's rows (along ``dim``) put back in group-major order: the inverse of :meth:`mine`."""
        if self.processes == 1:
            return local
        moved = local.movedim(dim, 0)
        parts = gather_cat(moved).reshape(self.processes, -1, self.share, *moved.shape[1:])
        return parts.transpose(0, 1).reshape(-1, *moved.shape[1:]).movedim(0, dim)
