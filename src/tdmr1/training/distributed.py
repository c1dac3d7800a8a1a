"""Several processes (GPUs) for TDM-R1: every role's adapter synchronised without DDP, each prompt group spread
over the processes, every draw shared so that W processes compute what one does (why and how: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import math
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


def share_group_means(means: Tensor, ids: Tensor, counts: Tensor) -> Tensor:
    """The whole groups' means of ``means`` (this process's, groups ``ids``) when every process holds an equal
    share of every group: the average over processes."""
    return mean_over_ranks(means)


@dataclass(frozen=True)
class WholeGroupMeans:
    """The whole groups' means of ``means`` (this process's, groups ``ids`` with ``counts`` rows here) when
    groups span processes unevenly: sums and counts added over processes (ids below ``groups``)."""

    groups: int

    def __call__(self, means: Tensor, ids: Tensor, counts: Tensor) -> Tensor:
        if not is_distributed():
            return means
        totals = means.new_zeros(2, self.groups)
        totals[0].index_add_(0, ids, means * counts)
        totals[1].index_add_(0, ids, counts)
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        return (totals[0] / totals[1])[ids]


@dataclass(frozen=True)
class BatchLayout:
    """How one iteration's m x G images spread over processes and per-device micro-batches.

    Rows are numbered group-major (row g G + i is image i of group g). A micro-batch is ``minibatch_groups``
    whole groups = ``per_device_batch`` x W rows. When W divides G every rank holds G / W rows of every group
    (``share``); otherwise groups span processes: each micro-batch's rows are split contiguously, each rank
    holding ``per_device_batch`` consecutive rows of it (either way ``block`` rows split into W runs of ``piece``).
    ``chunked``: the no-grad forwards over all of a process's rows (rollout, sur_rank) run a micro-batch at a time.
    """

    group_size: int
    groups: int
    processes: int
    per_device_batch: int
    rank: int = 0
    chunked: bool = False

    def __post_init__(self) -> None:
        for key in ("group_size", "groups", "processes", "per_device_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        unit = self.group_size // math.gcd(self.group_size, self.processes)  # the least per_device_batch
        if self.per_device_batch % unit:
            raise ConfigError(self._unsplit(unit))
        if self.groups % self.minibatch_groups:
            raise ConfigError(
                f"per_device_batch {self.per_device_batch} x {self.processes} processes = "
                f"{self.minibatch_groups} groups of {self.group_size} per micro-batch, which does not divide "
                f"the {self.groups} groups (prompts_per_iteration) of an iteration"
            )

    def _unsplit(self, unit: int) -> str:
        """Why ``per_device_batch`` (not a multiple of ``unit``) gives no micro-batch of whole groups."""
        if not self.spans:
            return (
                f"per_device_batch {self.per_device_batch} is not a multiple of {self.share} (group_size "
                f"{self.group_size} / {self.processes} processes): a micro-batch holds every process's share "
                "of whole prompt groups"
            )
        return (
            f"group_size {self.group_size} does not split evenly over {self.processes} processes, so groups span "
            f"processes and a micro-batch (per_device_batch x {self.processes}) must be whole groups: "
            f"per_device_batch must be a multiple of {unit}, got {self.per_device_batch}"
        )

    @classmethod
    def of_minibatches(cls, group_size: int, groups: int, processes: int, minibatch_groups: int, rank: int = 0):
        """The layout whose micro-batch is ``minibatch_groups`` whole groups split over the processes."""
        images = minibatch_groups * group_size
        if images % processes:
            least = processes // math.gcd(group_size, processes)
            raise ConfigError(
                f"group_size {group_size} does not split evenly over {processes} processes, nor does a "
                f"micro-batch of minibatch_groups {minibatch_groups} x {group_size} = {images} images: "
                f"minibatch_groups must be a multiple of {least} (or, on a scale config, set per_device_batch)"
            )
        return cls(group_size, groups, processes, images // processes, rank)

    @property
    def spans(self) -> bool:
        """Whether prompt groups span processes (W does not divide G)."""
        return self.group_size % self.processes != 0

    @property
    def share(self) -> int:
        """Rows of each prompt group on each process (when W divides G)."""
        return self.group_size // self.processes

    @property
    def block(self) -> int:
        """Consecutive rows split evenly over the processes: a group, or a micro-batch when groups span."""
        return self.per_device_batch * self.processes if self.spans else self.group_size

    @property
    def piece(self) -> int:
        """This process's consecutive rows of each block."""
        return self.block // self.processes

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

    @property
    def forward_rows(self) -> int:
        """Images a no-grad forward over this process's rows takes at most (``chunked``: a micro-batch)."""
        return self.per_device_batch if self.chunked else self.images_per_process

    @property
    def group_reduce(self) -> Callable[[Tensor, Tensor, Tensor], Tensor] | None:
        """The whole groups' means from this process's (the surrogate losses' ``group_reduce``; one process: None)."""
        if self.processes == 1:
            return None
        return WholeGroupMeans(self.groups) if self.spans else share_group_means

    def positions(self, groups: int, rank: int | None = None) -> Tensor:
        """Rows of rank ``rank`` (default: this layout's) among ``groups`` whole groups laid out group-major
        (whole micro-batches when groups span processes)."""
        rank = self.rank if rank is None else rank
        blocks, rest = divmod(groups * self.group_size, self.block)
        if rest:
            raise ValueError(f"{groups} groups are not whole micro-batches of {self.minibatch_groups} groups")
        start = torch.arange(blocks).unsqueeze(1) * self.block + rank * self.piece
        return (start + torch.arange(self.piece)).flatten()

    def rows(self, rank: int | None = None) -> Tensor:
        """This rank's rows of the iteration's images."""
        return self.positions(self.groups, rank)

    def minibatch_order(self, order: Tensor) -> list[Tensor]:
        """The iteration's groups in a random ``order`` cut into minibatches of ``minibatch_groups``; when
        groups span processes each minibatch is a micro-batch's groups (blocks and the groups in each kept in
        the order they first appear in ``order``), so that every process holds its ``per_device_batch`` rows."""
        if self.spans:
            blocks = (order // self.minibatch_groups).tolist()
            first = {b: i for i, b in reversed(list(enumerate(blocks)))}  # where each block first appears
            key = torch.tensor([first[b] for b in blocks], device=order.device)
            order = order[torch.sort(key, stable=True).indices]
        return list(order.split(self.minibatch_groups))

    def minibatch_rows(self, groups: Tensor) -> tuple[Tensor, Tensor]:
        """(this process's rows of the minibatch ``groups``: indices into :meth:`rows`, their positions among the
        minibatch's rows laid out group-major in ``groups`` order, where a draw for the whole minibatch is read)."""
        rows = self.rows()
        group, within = rows // self.group_size, rows % self.group_size
        idx, pos = [], []
        for k, g in enumerate(groups.tolist()):
            mine = torch.nonzero(group == g).flatten()
            idx.append(mine)
            pos.append(k * self.group_size + within[mine])
        return torch.cat(idx), torch.cat(pos)

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
        return self.from_ranks(gather_cat(moved)).movedim(0, dim)

    def from_ranks(self, stacked: Tensor) -> Tensor:
        """Every rank's rows (dim 0) concatenated in rank order, put back in group-major order."""
        parts = stacked.reshape(self.processes, -1, self.piece, *stacked.shape[1:])
        return parts.transpose(0, 1).reshape(-1, *stacked.shape[1:])
