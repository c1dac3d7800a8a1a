"""Learning curve of a TDM-R1 run: the full benchmark (4 NFE) of every snapshot the run exported
(`--set snapshot_every=N` writes `snapshots/iter_NNNNN`), against iterations, reward queries and wall
time, with the student and the teacher@80 NFE as horizontal lines.

    python benchmarks/learning_curve.py --run runs/r1-shapes --out benchmarks/results/curve_shapes

Each snapshot's evaluation is kept (`<out>/iter_NNNNN/results.json`) and reused on a second call, so
the curve can be extended while the run goes on. Writes `<out>/learning_curve.json` and `.png`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tdmr1.devices import resolve_device  # noqa: E402
from tdmr1.diffusion.sampling import SamplingConfig  # noqa: E402
from tdmr1.eval.evaluate import evaluate  # noqa: E402
from tdmr1.models.embedded import EmbeddedT2I  # noqa: E402
from tdmr1.utils.io import read_jsonl  # noqa: E402


def cumulative_times(run: Path) -> dict[int, float]:
    """Wall seconds at each logged step, summed over resumed segments (each segment restarts its clock)."""
    out, offset, last = {}, 0.0, 0.0
    for row in read_jsonl(run / "metrics.jsonl"):
        if "time" not in row:
            continue
        if row["time"] < last:
            offset += last
        last = row["time"]
        out[int(row["step"])] = offset + row["time"]
    return out


def logged_queries(run: Path) -> dict[int, float]:
    """Reward queries the trainer logged at each step (warm-up and surrogate-only rollouts included)."""
    return {int(r["step"]): r["reward_queries"] for r in read_jsonl(run / "metrics.jsonl") if "reward_queries" in r}


def evaluate_snapshot(
    path: Path, world: str, out: Path, images_per_prompt: int, device: str, limit_prompts: int | None = None
) -> dict:
    results = out / "results.json"
    if results.is_file():
        return json.loads(results.read_text())
    model = EmbeddedT2I.load(path, device=resolve_device(device)).eval()
    meta = model.meta["sampling"]
    sampling = SamplingConfig(steps=meta["steps"], cfg=1.0, sampler="euler", shift=meta["shift"])
    return evaluate(model, world, sampling, out, images_per_prompt, limit_prompts, quiet=True, overwrite=True)


def plot_tags(axes, rows: list[dict], student: dict, teacher: dict) -> None:
    """Second row: each tag's accuracy against iterations, the student's (dashed) and teacher's (dotted) beside."""
    tags = sorted(student.get("tags") or {})
    if not tags:
        return
    for ax, part in zip(axes, (tags[: (len(tags) + 1) // 2], tags[(len(tags) + 1) // 2 :], []), strict=True):
        for i, tag in enumerate(part):
            color = f"C{i}"
            points = [(r["iteration"], (r.get("tags") or student["tags"])[tag]["accuracy"]) for r in rows]
            ax.plot(*zip(*points, strict=True), "o-", color=color, label=tag, ms=3)
            ax.axhline(student["tags"][tag]["accuracy"], color=color, ls="--", lw=0.8)
            if tag in (teacher.get("tags") or {}):
                ax.axhline(teacher["tags"][tag]["accuracy"], color=color, ls=":", lw=0.8)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if part:
            ax.set_ylabel("accuracy per tag (-- student, : teacher)")
            ax.legend(fontsize=8)
        else:
            ax.axis("off")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--student-eval", default="checkpoints/shapes/tdm4/eval_4nfe.json")
    ap.add_argument("--teacher-eval", default="checkpoints/shapes/teacher/eval_80nfe.json")
    ap.add_argument("--images-per-prompt", type=int, default=4)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]")
    ap.add_argument("--limit-prompts", type=int, default=None, help="first N prompts per tag (quick checks only)")
    args = ap.parse_args(argv)
    config = json.loads((args.run / "config.json").read_text())
    per_iteration = config["prompts_per_iteration"] * config["group_size"]
    times = cumulative_times(args.run)
    queries = logged_queries(args.run)
    student = json.loads(Path(args.student_eval).read_text())
    teacher = json.loads(Path(args.teacher_eval).read_text())
    rows = [{"iteration": 0, "reward_queries": 0, "wall_seconds": 0.0, "overall": student["overall"]}]
    for snap in sorted((args.run / "snapshots").glob("iter_*")):
        it = int(snap.name.split("_")[1])
        res = evaluate_snapshot(
            snap, config["world"], args.out / snap.name, args.images_per_prompt, args.device, args.limit_prompts
        )
        row = {
            "iteration": it,
            "reward_queries": queries.get(it, it * per_iteration),
            "wall_seconds": round(times.get(it, float("nan")), 1),
            "overall": res["overall"],
            **({"off_palette_fraction": res["off_palette_fraction"]} if "off_palette_fraction" in res else {}),
            "tags": res.get("tags"),
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "tags"}), flush=True)
    result = {
        "run": str(args.run),
        "student_overall": student["overall"],
        "teacher80_overall": teacher["overall"],
        "points": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_curve.json").write_text(json.dumps(result, indent=2))
    p, n = student["overall"], max(int(student.get("images") or student.get("scored") or 1), 1)
    band = 2.0 * (p * (1.0 - p) / n) ** 0.5  # two binomial standard errors of one evaluation of the student
    values = [r["overall"] for r in rows] + [teacher["overall"], p - band, p + band]
    mid, half = (min(values) + max(values)) / 2, max((max(values) - min(values)) / 2 + 0.01, 0.05)
    fig, grid = plt.subplots(2, 3, figsize=(13, 7.2))
    axes = grid[0]
    for ax, key, label in zip(
        axes,
        ("iteration", "reward_queries", "wall_seconds"),
        ("iterations", "reward queries", "wall time (s)"),
        strict=True,
    ):
        ax.plot([r[key] for r in rows], [r["overall"] for r in rows], "o-", label="TDM-R1 (4 NFE)")
        ax.axhline(p, color="grey", ls="--", label="TDM student (4 NFE)")
        ax.axhspan(p - band, p + band, color="grey", alpha=0.15, label="student +- 2 s.e. (one evaluation)")
        ax.axhline(teacher["overall"], color="black", ls=":", label="teacher (80 NFE)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{config['world']} benchmark overall")
    axes[0].set_ylim(mid - half, mid + half)  # at least +-0.05: a flat run must look flat
    for ax in axes[1:]:
        ax.set_ylim(mid - half, mid + half)
    axes[0].legend(fontsize=8)
    plot_tags(grid[1], rows, student, teacher)
    fig.tight_layout()
    fig.savefig(args.out / "learning_curve.png", dpi=110)


if __name__ == "__main__":
    main()
