"""GlyphsEval v2 backbone choice: parameters, forward and forward+backward+AdamW time per batch of 32x128
one-channel images for candidate layouts of the embedded UNet (where text cross-attention sits, a
fourth level, explicit coordinate channels). Cost only: which layout spells best needs training (GPU).

    python benchmarks/bench_glyphs_backbone.py [--out benchmarks/results/glyphs_v2_backbone.json] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tdmr1.config import load_config
from tdmr1.teacher.pretrain import PretrainConfig, build_model

#: name -> backbone overrides on top of configs/glyphs/pretrain.yaml (every varied field set explicitly).
_PLAIN = ["backbone.cross_only_levels=[]", "backbone.coord_channels=false"]
CANDIDATES: dict[str, list[str]] = {
    "3 levels, xattn 64+32 px wide (v1 layout)": [
        "backbone.block_out_channels=[32, 64, 128]",
        "backbone.cross_attention_levels=[false, true, true]",
        *_PLAIN,
    ],
    "3 levels, xattn 32 px wide only": [
        "backbone.block_out_channels=[32, 64, 128]",
        "backbone.cross_attention_levels=[false, false, true]",
        *_PLAIN,
    ],
    "3 levels, xattn 64+32, no self-attn at 64": [
        "backbone.block_out_channels=[32, 64, 128]",
        "backbone.cross_attention_levels=[false, true, true]",
        "backbone.cross_only_levels=[false, true, false]",
        "backbone.coord_channels=false",
    ],
    "3 levels, xattn 64+32, coord channels": [
        "backbone.block_out_channels=[32, 64, 128]",
        "backbone.cross_attention_levels=[false, true, true]",
        "backbone.cross_only_levels=[]",
        "backbone.coord_channels=true",
    ],
    "3 levels, xattn 64+32, no self-attn at 64, coord channels (configs/glyphs/pretrain.yaml)": [
        "backbone.block_out_channels=[32, 64, 128]",
        "backbone.cross_attention_levels=[false, true, true]",
        "backbone.cross_only_levels=[false, true, false]",
        "backbone.coord_channels=true",
    ],
    "4 levels, xattn 32+16": [
        "backbone.block_out_channels=[32, 64, 128, 128]",
        "backbone.cross_attention_levels=[false, false, true, true]",
        *_PLAIN,
    ],
    "4 levels, xattn 64+32+16, no self-attn at 64": [
        "backbone.block_out_channels=[32, 64, 128, 128]",
        "backbone.cross_attention_levels=[false, true, true, true]",
        "backbone.cross_only_levels=[false, true, false, false]",
        "backbone.coord_channels=false",
    ],
}


def build(overrides: list[str]) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = load_config(PretrainConfig, Path("configs/glyphs/pretrain.yaml"), ["world=glyphs", *overrides])
    return build_model(cfg)


def time_once(model, batch: int) -> tuple[float, float]:
    """(forward, forward+backward+AdamW) seconds for one batch of 32x128 images."""
    x, s = torch.randn(batch, *model.image_shape), torch.rand(batch)
    prompts = ['a sign that says "KQTAXBWM"'] * batch
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    t0 = time.perf_counter()
    model(x, s, model.encode_prompts(prompts)).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
    fb = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        model(x, s, model.encode_prompts(prompts))
        fw = time.perf_counter() - t0
    return fw, fb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/glyphs_v2_backbone.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build(overrides) for name, overrides in CANDIDATES.items()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(args.repeats + 1):  # round robin, so a shared machine's load drifts over every candidate alike
        for name, model in models.items():
            times[name].append(time_once(model, args.batch))
    results = {}
    for name, model in models.items():
        fw, fb = (min(t[k] for t in times[name][1:]) for k in (0, 1))
        results[name] = {
            "overrides": CANDIDATES[name],
            "denoiser_params_m": round(sum(p.numel() for p in model.denoiser.parameters()) / 1e6, 3),
            "forward_s": round(fw, 4),
            "forward_backward_adamw_s": round(fb, 4),
        }
        print(name, results[name], flush=True)
    out = {
        "image": [1, 32, 128],
        "batch": args.batch,
        "threads": args.threads,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "timing": "best of repeats (round robin over the candidates), seconds per batch (CPU, shared machine)",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
