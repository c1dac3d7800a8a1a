"""GlyphsEval spec v2 oracle check: the benchmark's clean renders (and the same renders under a Gaussian
blur of sigma 0.8) scored by the OCR reward, overall and per word length, at the levels asked for (by
world name; default the two 32 x 128 levels). The spec asks for >= 0.99 OCR accuracy on clean renders.
Also the grey-pixel share of clean renders (the quality proxy's floor). Writes JSON (with the command).

    python benchmarks/glyphs_v2_oracle.py [--out benchmarks/results/glyphs_v2_oracle.json] [--threads 1]
    python benchmarks/glyphs_v2_oracle.py --worlds glyphs-compact --out benchmarks/results/glyphs_compact_oracle.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from tdmr1.worlds import get_world
from tdmr1.worlds.glyphs import OcrReward, gray_fraction


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma))) for img in images])


def score(reward: OcrReward, images: np.ndarray, suite: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = reward(images, [md["prompt"] for md in suite], suite)
    seconds = time.perf_counter() - t0
    lengths = sorted({len(md["text"]) for md in suite})
    per_length = {}
    for n in lengths:
        sel = [i for i, md in enumerate(suite) if len(md["text"]) == n]
        per_length[f"{n}_letters"] = {
            "words": len(sel),
            "ocr_accuracy": round(float(out.scores[sel].mean()), 4),
            "exact_match": round(float(np.mean([out.info["correct"][i] for i in sel])), 4),
        }
    misses = [
        {"text": md["text"], "read": out.info["pred"][i], "score": round(float(out.scores[i]), 4)}
        for i, md in enumerate(suite)
        if not out.info["correct"][i]
    ]
    return {
        "ocr_accuracy": round(float(out.scores.mean()), 4),
        "exact_match": round(float(np.mean(out.info["correct"])), 4),
        "per_length": per_length,
        "misses": misses,
        "ocr_seconds": round(seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/glyphs_v2_oracle.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sigma", type=float, default=0.8)
    ap.add_argument("--worlds", default="glyphs,glyphs-hard", help="comma-separated glyphs world names (levels)")
    args = ap.parse_args()
    reward = OcrReward(threads=args.threads)
    results: dict[str, Any] = {}
    for name in args.worlds.split(","):
        world = get_world(name)
        suite = world.benchmark_suite()
        clean = np.stack([world.render_oracle(md, None) for md in suite])
        results[name] = {
            "spec": world.spec,
            "image_size": list(world.image_size),
            "images": len(suite),
            "clean": score(reward, clean, suite),
            f"blur_sigma_{args.sigma}": score(reward, blur(clean, args.sigma), suite),
            "clean_gray_fraction": round(gray_fraction(clean), 4),
        }
        print(name, {k: v["ocr_accuracy"] for k, v in results[name].items() if isinstance(v, dict)}, flush=True)
    out = {
        "command": shlex.join(["python", "benchmarks/glyphs_v2_oracle.py", *sys.argv[1:]]),
        "reward": "rapidocr PP-OCRv6_rec_small, recognition only, whole image (the GlyphsEval OCR reward)",
        "spec_bar": "clean renders >= 0.99 OCR accuracy",
        "meets_spec_bar": all(r["clean"]["ocr_accuracy"] >= 0.99 for r in results.values()),
        "threads": args.threads,
        "machine": platform.machine(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
