"""Backbone cost: forward and forward+backward+AdamW per batch of 64 (32x32x3) for candidate denoisers.

Records the measurement behind the choice of the embedded backbone (a small diffusers UNet with text
cross-attention at 8x8 only) against the SD3 transformer class and larger UNets. Writes JSON.

    python benchmarks/bench_backbone.py [--out benchmarks/results/backbone.json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel

from tdmr1.models.embedded import BackboneConfig, build_denoiser

SIZE = {"image_height": 32, "image_width": 32}
CANDIDATES = {
    "unet_32_64_128_attn8 (shipped)": BackboneConfig(**SIZE),
    "unet_32_64_64_attn8": BackboneConfig(block_out_channels=(32, 64, 64), **SIZE),
    "unet_32_64_96_attn16+8": BackboneConfig(
        block_out_channels=(32, 64, 96), cross_attention_levels=(False, True, True), **SIZE
    ),
    "unet_64_128_128_attn16+8": BackboneConfig(
        block_out_channels=(64, 128, 128), cross_attention_levels=(False, True, True), **SIZE
    ),
}


def sd3(patch: int) -> torch.nn.Module:
    return SD3Transformer2DModel(
        sample_size=32,
        patch_size=patch,
        in_channels=3,
        out_channels=3,
        num_layers=6,
        attention_head_dim=32,
        num_attention_heads=6,
        joint_attention_dim=64,
        caption_projection_dim=192,
        pooled_projection_dim=64,
        pos_embed_max_size=32,
    )


def time_model(model: torch.nn.Module, call, repeats: int) -> dict[str, float]:
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    fb, fw = [], []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        call(model).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        fb.append(time.perf_counter() - t0)
        with torch.no_grad():
            t0 = time.perf_counter()
            call(model)
            fw.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {
        "params_m": round(params / 1e6, 3),
        "forward_s": round(min(fw[1:]), 4),
        "forward_backward_adamw_s": round(min(fb[1:]), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/backbone.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, t, text = torch.randn(64, 3, 32, 32), torch.rand(64) * 1000, torch.randn(64, 12, 64)
    results = {}
    for name, cfg in CANDIDATES.items():
        net = build_denoiser(cfg)
        results[name] = time_model(net, lambda m: m(x, t, encoder_hidden_states=text).sample, args.repeats)
        print(name, results[name], flush=True)
    pooled = torch.randn(64, 64)
    for patch in (4, 2):
        name = f"sd3_transformer_patch{patch}"
        results[name] = time_model(
            sd3(patch),
            lambda m: m(x, encoder_hidden_states=text, pooled_projections=pooled, timestep=t).sample,
            args.repeats,
        )
        print(name, results[name], flush=True)
    out = {
        "batch": 64,
        "image": [3, 32, 32],
        "threads": args.threads,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
