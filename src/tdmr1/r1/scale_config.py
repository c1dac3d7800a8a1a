"""TDM-R1 on a scale-path backbone (``configs/scale/*.yaml``): :class:`RLConfig` plus the backbone, the
generator's initial LoRA, a prompt file, the per-process micro-batch and the memory switches (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tdmr1.config import option
from tdmr1.errors import ConfigError
from tdmr1.models.registry import BackboneSpec
from tdmr1.r1.config import RLConfig
from tdmr1.training.distributed import BatchLayout

BASE_DTYPES = ("fp32", "bf16")


@dataclass
class ScaleRLConfig(RLConfig):
    """RLConfig + backbone source + batch layout + memory switches."""

    backbone: BackboneSpec = option(factory=BackboneSpec, doc="which backbone, from which local folder")
    init_lora: str | None = option(None, "generator adapter to start from: the authors' .ckpt or a named file")
    prompts: str | None = option(None, "training prompts (one per line, or jsonl with metadata)")
    per_device_batch: int | None = option(
        None,
        "images per process and micro-batch (gradients accumulate; the rollout and sur_rank run in chunks of it); "
        "times the processes it must be whole groups (which span processes when they do not divide group_size); "
        "default minibatch_groups x group_size / processes",
    )
    sur_rank_every: int = option(
        0, "every N iterations: the surrogate's ranking of the fresh batch, a diagnostic (0 = off; ~+12 % compute)"
    )
    gradient_checkpointing: bool = option(
        False, "per-block activation checkpointing of the transformer, recomputed with the right LoRA role"
    )
    cache_prompts: bool = option(
        False, "encode the whole prompt pool once at start, then move the text encoders to the CPU"
    )
    base_dtype: str = option(
        "fp32", "frozen transformer weights: fp32 or bf16 (LoRA weights, EMA, optimizer states stay fp32)"
    )

    def validate(self) -> None:
        super().validate()
        if self.per_device_batch is not None and self.per_device_batch < 1:
            raise ConfigError(f"per_device_batch must be >= 1, got {self.per_device_batch}")
        if self.base_dtype not in BASE_DTYPES:
            raise ConfigError(f"base_dtype must be one of {', '.join(BASE_DTYPES)}, got {self.base_dtype!r}")
        if self.base_dtype != "fp32" and self.backbone.mixed_precision == "no":
            raise ConfigError(
                f"base_dtype {self.base_dtype} needs backbone.mixed_precision bf16 (or fp16): the fp32 LoRA and "
                "the bf16 base layers only meet under autocast"
            )

    def layout(self, processes: int, rank: int = 0) -> BatchLayout:
        """The batch arithmetic for ``processes`` processes (ConfigError when it does not divide): the
        micro-batch is ``per_device_batch``, else ``minibatch_groups`` whole groups split over the processes;
        the rollout and sur_rank run a micro-batch at a time."""
        if self.per_device_batch is None:
            layout = BatchLayout.of_minibatches(
                self.group_size, self.prompts_per_iteration, processes, self.minibatch_groups, rank
            )
        else:
            layout = BatchLayout(self.group_size, self.prompts_per_iteration, processes, self.per_device_batch, rank)
        return replace(layout, chunked=True)
