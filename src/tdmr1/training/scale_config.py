"""TDM-R1 on a scale-path backbone: :class:`RLConfig` plus where the backbone comes from and how the
iteration's images spread over processes (``configs/scale/*.yaml``).

`tdmr1 train` (single process) reads them: the extra fields are ``backbone`` (a
:class:`tdmr1.models.registry.BackboneSpec`), ``init_lora`` (the authors' order-only TDM LoRA, loaded into
the generator role, or a named adapter ``.safetensors``), ``prompts`` (a prompt file for worlds without
their own pool) and ``per_device_batch`` (micro-batch per process; checked against groups x group size
and the number of processes by :class:`tdmr1.training.distributed.BatchLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tdmr1.config import option
from tdmr1.models.registry import BackboneSpec
from tdmr1.training.distributed import BatchLayout
from tdmr1.training.rl_config import RLConfig


@dataclass
class ScaleRLConfig(RLConfig):
    """RLConfig + backbone source + multi-process batch layout."""

    backbone: BackboneSpec = option(factory=BackboneSpec, doc="which backbone, from which local folder")
    init_lora: str | None = option(None, "generator adapter to start from: the authors' .ckpt or a named file")
    prompts: str | None = option(None, "training prompts (one per line, or jsonl with metadata)")
    per_device_batch: int = option(12, "images per process and micro-batch (gradients accumulate)")

    def layout(self, processes: int) -> BatchLayout:
        """The batch arithmetic for ``processes`` processes (ConfigError when it does not divide)."""
        return BatchLayout(self.group_size, self.prompts_per_iteration, processes, self.per_device_batch)
