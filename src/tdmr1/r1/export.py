"""What a TDM-R1 run hands out: the generator with its EMA weights (an embedded student, or a scale run's
adapter with a ``config.json`` naming backbone, LoRA and schedule) and sample grids of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from tdmr1.config import to_dict
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.models.checkpoints import ADAPTER_FILE
from tdmr1.models.registry import images_of
from tdmr1.pipelines.generate import generate_images
from tdmr1.pipelines.scale_sampling import ADAPTER_FORMAT
from tdmr1.r1.config import RLConfig
from tdmr1.tdm.system import FewStepSystem
from tdmr1.training.ema import TensorEMA
from tdmr1.utils.io import atomic_write_text, atomic_writer


def export_adapter(system: FewStepSystem, ema: TensorEMA, directory: Path, cfg: RLConfig, meta: dict[str, Any]) -> None:
    """Scale runs: the generator adapter (EMA weights, peft names; ``tdmr1 convert-lora`` turns it into
    the authors' order-only ``.ckpt``) and a ``config.json`` naming the backbone, LoRA and schedule."""
    directory.mkdir(parents=True, exist_ok=True)
    ema.swap()
    try:
        adapter = system.roles.adapter_state("generator")
    finally:
        ema.swap()
    with atomic_writer(directory / ADAPTER_FILE) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, str(tmp))
    info = {
        "format": ADAPTER_FORMAT,
        "backbone": to_dict(cfg.backbone),
        "kind": getattr(system.model, "kind", None),
        "lora": to_dict(system.roles.lora["generator"]),
        "sigmas": system.sigmas.tolist(),
        "solver": system.solver,
        "ema_decay": cfg.ema_decay,  # written as "decay" when converted to the authors' EMA .ckpt
        **meta,
    }
    atomic_write_text(directory / "config.json", json.dumps(info, indent=2))


def grid_images(
    system: FewStepSystem, ema: TensorEMA, prompts: list[str], sampling: SamplingConfig, scale: bool
) -> np.ndarray:
    """One image per prompt from the EMA generator (seeds 1000, 1001, ...): the embedded sampler, or on a
    scale run the student's own schedule with the latents decoded."""
    model = system.model
    ema.swap()
    try:
        with system.roles.use("generator"), torch.no_grad():
            seeds = [1000 + i for i in range(len(prompts))]
            if scale:
                noise = torch.stack(
                    [torch.randn(model.image_shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
                ).to(system.device)
                traj = system.rollout(system.encode(prompts), noise)
                return images_of(model, traj.final)
            return generate_images(model, prompts, seeds, sampling)
    finally:
        ema.swap()
