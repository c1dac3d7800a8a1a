"""One benchmark tag at many images a prompt (more paired power than the full benchmark's 4), optionally
paired against another run of this script (exact McNemar). Used for the session-9 counting numbers.

    python benchmarks/tag_eval.py --checkpoint checkpoints/shapes/tdm4 --tag counting --images 16 --out ev/student
    python benchmarks/tag_eval.py --checkpoint runs/counting2/snapshots/iter_00100 --tag counting --images 16 \
        --out ev/it100 --against ev/student
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from scipy.stats import binomtest

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.eval.scoring import score_folder
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import sample_to_folder
from tdmr1.worlds import get_world


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--world", default="shapes")
    ap.add_argument("--tag", default="counting")
    ap.add_argument("--images", type=int, default=16, help="images per prompt (fixed seeds)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--against", type=Path, default=None, help="an earlier --out of this script: paired test")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = EmbeddedT2I.load(args.checkpoint)
    s = model.meta["sampling"]
    sampling = SamplingConfig(
        steps=s["steps"], cfg=s.get("cfg", 1.0), sampler=s.get("sampler", "euler"), shift=s["shift"]
    )
    suite = [md for md in get_world(args.world).benchmark_suite() if md["tag"] == args.tag]
    sample_to_folder(model, suite, args.out / "images", sampling, args.images, 0, quiet=True)
    report = score_folder(args.world, args.out / "images")
    result = {
        "checkpoint": str(args.checkpoint),
        "tag": args.tag,
        "images": len(report.images),
        "accuracy": report.overall,
        "mean_score": report.mean_score,
        "correct": [bool(r["correct"]) for r in report.images],
    }
    if args.against is not None:
        before = json.loads((args.against / "results.json").read_text())["correct"]
        gained = sum(not a and b for a, b in zip(before, result["correct"], strict=True))
        lost = sum(a and not b for a, b in zip(before, result["correct"], strict=True))
        p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
        result["paired"] = {"against": str(args.against), "gained": gained, "lost": lost, "p": p}
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "correct"}))
    return result


if __name__ == "__main__":
    main()
