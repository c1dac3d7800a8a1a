"""Sampling speed: images per second of the 4-NFE student vs the teacher at 80 NFE (40 steps x CFG),
measured in one run on the same prompts; the ideal ratio is 20x. Writes JSON.

    python benchmarks/bench_sampling_speed.py --teacher checkpoints/shapes/teacher --student checkpoints/shapes/tdm4
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import generate_images
from tdmr1.worlds import get_world


def images_per_second(model: EmbeddedT2I, prompts: list[str], cfg: SamplingConfig, repeats: int) -> float:
    generate_images(model, prompts[:8], list(range(8)), cfg)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate_images(model, prompts, list(range(len(prompts))), cfg, batch_size=64)
        best = min(best, time.perf_counter() - t0)
    return len(prompts) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="checkpoints/shapes/teacher")
    ap.add_argument("--student", default="checkpoints/shapes/tdm4")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/sampling_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    suite = get_world("shapes").benchmark_suite()
    prompts = [suite[i % len(suite)]["prompt"] for i in range(args.images)]
    teacher, student = EmbeddedT2I.load(args.teacher).eval(), EmbeddedT2I.load(args.student).eval()
    t_cfg = SamplingConfig(steps=40, cfg=4.5, sampler="euler", shift=teacher.meta["sampling"]["shift"])
    s_cfg = SamplingConfig(**student.meta["sampling"])
    ips_teacher = images_per_second(teacher, prompts, t_cfg, args.repeats)
    ips_student = images_per_second(student, prompts, s_cfg, args.repeats)
    out = {
        "teacher_nfe": t_cfg.nfe,
        "student_nfe": s_cfg.nfe,
        "teacher_images_per_s": round(ips_teacher, 2),
        "student_images_per_s": round(ips_student, 2),
        "ratio": round(ips_student / ips_teacher, 2),
        "ideal_ratio": t_cfg.nfe / s_cfg.nfe,
        "target_ratio": 15.0,
        "images": args.images,
        "threads": args.threads,
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
