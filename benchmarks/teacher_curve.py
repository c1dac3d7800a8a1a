"""Learning curve of a pretraining run: ShapesEval of every EMA snapshot (and the final model) on a
deterministic benchmark slice, against optimizer steps and wall time. Writes JSON and a PNG.

    python benchmarks/teacher_curve.py runs/teacher-shapes --limit-prompts 8 --images-per-prompt 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tdmr1.diffusion.sampling import SamplingConfig  # noqa: E402
from tdmr1.eval.evaluate import evaluate  # noqa: E402
from tdmr1.models.embedded import EmbeddedT2I  # noqa: E402
from tdmr1.training.progress import read_metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cfg", type=float, default=4.5)
    ap.add_argument("--shift", type=float, default=3.0)
    ap.add_argument("--limit-prompts", type=int, default=8)
    ap.add_argument("--images-per-prompt", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/learning_curve.json")
    args = ap.parse_args()
    out = args.out or args.run_dir / "learning_curve.json"
    wall = {r["step"]: r["time"] for r in read_metrics(args.run_dir)}
    sampling = SamplingConfig(steps=args.steps, cfg=args.cfg, sampler="euler", shift=args.shift)
    points = []
    for snap in sorted((args.run_dir / "snapshots").glob("step_*")):
        step = int(snap.name.split("_")[1])
        res = evaluate(
            EmbeddedT2I.load(snap).eval(),
            "shapes",
            sampling,
            Path("/tmp") / f"curve_{step}",
            args.images_per_prompt,
            args.limit_prompts,
            quiet=True,
            overwrite=True,
        )
        tags = {k: v["accuracy"] for k, v in res["tags"].items()}
        points.append({"step": step, "logged_seconds": wall.get(step), "overall": res["overall"], "tags": tags})
        print(step, round(res["overall"], 3), {k: round(v, 2) for k, v in tags.items()}, flush=True)
    out.write_text(
        json.dumps(
            {
                "sampling": vars(sampling) | {"nfe": sampling.nfe},
                "slice": {"prompts_per_tag": args.limit_prompts, "images_per_prompt": args.images_per_prompt},
                "points": points,
            },
            indent=2,
        )
    )
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps = [p["step"] for p in points]
    for tag in points[0]["tags"] if points else []:
        ax.plot(steps, [p["tags"][tag] for p in points], marker=".", label=tag, alpha=0.7)
    ax.plot(steps, [p["overall"] for p in points], "k-o", label="overall")
    ax.set_xlabel("optimizer step (batch 64)")
    ax.set_ylabel(f"ShapesEval accuracy @{sampling.nfe} NFE")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
