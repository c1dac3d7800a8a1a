"""GlyphsEval compact teacher budget: seconds per real pretrain step (a fresh training batch rendered, flow
matching forward + backward, AdamW, EMA) at the batch size of configs/glyphs/pretrain_compact.yaml, for the
chosen layout, one with text cross-attention at 16x32 too, and the ShapesEval teacher (configs/shapes/
pretrain.yaml) as the reference whose unloaded cost is recorded (0.72-0.87 s/step, batch 64, 2 cores:
checkpoints/shapes/teacher/MODEL_CARD.md), so a number measured on a shared machine can be scaled.

    python benchmarks/bench_glyphs_compact_step.py [--steps 6] [--threads 2] \
        [--out benchmarks/results/glyphs_compact_step.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tdmr1.config import load_config
from tdmr1.diffusion.images import from_uint8
from tdmr1.teacher.pretrain import PretrainConfig, build_model, flow_matching_loss
from tdmr1.training.ema import EMA
from tdmr1.worlds import get_world

#: name -> (config file, overrides)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "compact: xattn 8x16 (configs/glyphs/pretrain_compact.yaml)": ("configs/glyphs/pretrain_compact.yaml", []),
    "compact: xattn 16x32 (cross-only) + 8x16": (
        "configs/glyphs/pretrain_compact.yaml",
        ["backbone.cross_attention_levels=[false, true, true]", "backbone.cross_only_levels=[false, true, false]"],
    ),
    "shapes teacher (reference)": ("configs/shapes/pretrain.yaml", []),
}
#: The shapes teacher's recorded cost on 2 free cores (s/step, batch 64): the scale of the reference.
SHAPES_UNLOADED = (0.72, 0.87)


class Trainer:
    def __init__(self, config: str, overrides: list[str]) -> None:
        self.cfg = load_config(PretrainConfig, Path(config), overrides)
        torch.manual_seed(0)
        self.model = build_model(self.cfg)
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.world = get_world(self.cfg.world)
        self.rng = np.random.default_rng(0)

    def step(self) -> tuple[float, float]:
        """(wall, process CPU) seconds of one training step."""
        t0, c0 = time.perf_counter(), time.process_time()
        images, captions = self.world.training_batch(self.rng, self.cfg.batch_size)
        x0 = from_uint8(images, self.cfg.backbone.channels)
        loss = flow_matching_loss(self.model, x0, captions, torch.rand(len(captions)), torch.randn_like(x0))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.model)
        return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/glyphs_compact_step.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    trainers = {name: Trainer(*spec) for name, spec in CANDIDATES.items()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
    for i in range(args.steps + 1):  # round robin, so a shared machine's load drifts over every candidate alike
        for name, trainer in trainers.items():
            t = trainer.step()
            if i:  # the first step warms up allocators and caches
                times[name].append(t)
    ref = float(np.median([w for w, _ in times["shapes teacher (reference)"]]))
    results = {}
    for name, trainer in trainers.items():
        wall = float(np.median([w for w, _ in times[name]]))
        results[name] = {
            "config": CANDIDATES[name][0],
            "overrides": CANDIDATES[name][1],
            "image": list(trainer.model.image_shape),
            "batch": trainer.cfg.batch_size,
            "denoiser_params_m": round(sum(p.numel() for p in trainer.model.denoiser.parameters()) / 1e6, 3),
            "wall_s_per_step": round(wall, 3),
            "cpu_s_per_step": round(float(np.median([c for _, c in times[name]])), 3),
            "ratio_to_shapes": round(wall / ref, 3),
            "unloaded_s_per_step_est": [round(wall / ref * s, 2) for s in SHAPES_UNLOADED],
        }
        print(name, results[name], flush=True)
    out = {
        "command": shlex.join(["python", "benchmarks/bench_glyphs_compact_step.py", *sys.argv[1:]]),
        "threads": args.threads,
        "steps": args.steps,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "timing": "median over steps (round robin over the candidates), seconds per step; "
        "unloaded_s_per_step_est = ratio to the shapes teacher x its recorded 0.72-0.87 s/step on 2 free cores",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
