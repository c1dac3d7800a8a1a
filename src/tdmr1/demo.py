"""`tdmr1 demo`: from the shipped 4-step student, a short TDM-R1 run on an embedded world, then evaluation
and ``report.md`` (teacher@80 NFE | TDM@4 | TDM-R1@4 per tag, reward curve, before/after grids)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tdmr1.config import load_config
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError
from tdmr1.eval.evaluate import evaluate
from tdmr1.eval.paired import compare_folders
from tdmr1.eval.report import comparison_table, write_report
from tdmr1.models.checkpoints import WHERE_TO_GET, resolve_checkpoint
from tdmr1.models.embedded import EmbeddedT2I, checkpoint_image_size
from tdmr1.r1.config import RLConfig, reward_queries
from tdmr1.r1.gate import RewardGate
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.training.progress import read_metrics
from tdmr1.worlds import get_world

#: Demo budget on 2 CPU cores: 32 images per iteration instead of the paper's 1152, so the generator's
#: learning rate is scaled down about as sqrt(batch) (7.5e-5 -> 2e-5; with 7.5e-5 the 10-minute demo
#: measured 0.627 -> 0.605 with extra speckle, with 2e-5 0.627 -> 0.649); everything else at the defaults.
DEMO_OVERRIDES = [
    "prompts_per_iteration=4",
    "group_size=8",
    "minibatch_groups=4",
    "lr_generator=2e-5",
    "val_every=10",
    "checkpoint_every=10",
    "iterations=100000",
]
TEACHER_EVAL_FILE = "eval_80nfe.json"
#: Images a prompt of the extra paired evaluation on the tags the demo trained (when a subset of the world's):
#: the full benchmark's 4 give a tag of 12 prompts 48 pairs, too few to see a change of 0.1 past noise.
FOCUS_IMAGES = 16


def trained_tags(cfg: RLConfig, world_tags: list[str], gate: RewardGate | None = None) -> list[str]:
    """The world's tags the reward trained, in world order: those the run drew prompts of (weight > 0 in
    ``tag_weights``) and, with a reward gate, whose gate was open at the end."""
    drawn = list(world_tags)
    if cfg.tag_weights is not None and cfg.prompt_stream == "balanced":
        drawn = [t for t in world_tags if cfg.tag_weights.get(t, 0.0) > 0]
    if gate is not None and gate.threshold is not None:
        drawn = [t for t in drawn if gate.is_open(t)]
    return drawn


def _focus_section(tags: list[str], tdm: dict[str, Any], r1: dict[str, Any], paired: Any) -> str:
    """The report's paragraph on the trained tags: accuracy before/after and the paired test."""
    rows = ["| tag | TDM @4 NFE | TDM-R1 @4 NFE | gained | lost |", "| --- | ---: | ---: | ---: | ---: |"]
    for tag in tags:
        counts = paired.tags.get(tag, {"gained": 0, "lost": 0})
        before, after = tdm["tags"][tag]["accuracy"], r1["tags"][tag]["accuracy"]
        rows.append(f"| {tag} | {before:.3f} | {after:.3f} | {counts['gained']} | {counts['lost']} |")
    return (
        f"The reward acted on prompts of {', '.join(tags)} only (the demo's recipe: the tags whose reward its "
        f"surrogate is measured to rank; the others were held by the KL and CFG terms). Their benchmark "
        f"prompts at {FOCUS_IMAGES} images a prompt "
        f"(the same fixed seeds for both models):\n\n" + "\n".join(rows) + f"\n\n{paired.sentence()}"
    )


def _ranking_sentence(ranking: dict[int, float]) -> str:
    """The surrogate's ranking of fresh batches over the run, as one report sentence."""
    if not ranking:
        return ""
    values = ", ".join(f"{v:+.2f}" for v in ranking.values())
    return (
        f"\n\nSurrogate ranking of each fresh batch before training on it (`sur_rank`: within-prompt "
        f"correlation of advantages with the surrogate's implicit reward; 0 = it carries no information yet), "
        f"iterations {min(ranking)}-{max(ranking)}: {values}."
    )


def _teacher_results(checkpoints: Path, world: str) -> dict[str, Any] | None:
    """The teacher's measured 80-NFE results shipped next to it (evaluating it live takes minutes)."""
    path = checkpoints / world / "teacher" / TEACHER_EVAL_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _student_path(checkpoints: str | Path, world: str) -> Path:
    """Where the world's shipped 4-step student is (``checkpoints`` names the shipped models wherever
    tdmr1 is installed); the path may not exist."""
    student = Path(checkpoints) / world / "tdm4"
    try:
        return resolve_checkpoint(student)
    except CheckpointError:
        return student


def _demo_world(world: str, checkpoints: str | Path) -> str:
    """The world the demo runs: this one, or its ``demo_world`` (glyphs -> glyphs-compact, the level a CPU
    trains) when only that one has a shipped student."""
    alt = get_world(world).demo_world
    return alt if alt and not _has_student(checkpoints, world) and _has_student(checkpoints, alt) else world


def _has_student(checkpoints: str | Path, world: str) -> bool:
    return (_student_path(checkpoints, world) / "adapter.safetensors").is_file()


def run_demo(
    world: str = "shapes",
    minutes: float | None = 10.0,
    iterations: int | None = None,
    out: str | Path = "demo_out",
    checkpoints: str | Path = "checkpoints",
    extra: list[str] | None = None,
    quiet: bool = False,
) -> Path:
    """Run the demo; returns the path of ``report.md``."""
    out = Path(out)
    asked, world = world, _demo_world(world, checkpoints)
    student = _student_path(checkpoints, world)
    if (student / "config.json").is_file():  # a model for another canvas (e.g. GlyphsEval v1) stops here
        get_world(world).check_image_size(checkpoint_image_size(student), f"the student {student}")
    if not (student / "adapter.safetensors").is_file():
        hint = get_world(world).model_hint  # the world's own recipe (glyphs: its level's configs), if it has one
        how = (
            f"no model is shipped for world {world!r} yet; {hint}; copy that student's model folder there"
            if hint
            else f"run `tdmr1 distill --world {world} --out runs/distill` and copy runs/distill/model there"
        )
        raise CheckpointError(f"shipped student not found at {student}: {how}, or pass --checkpoints ({WHERE_TO_GET})")
    checkpoints = student.parent.parent
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo always starts fresh from the shipped student
    world_rec = get_world(world)
    overrides = [*DEMO_OVERRIDES, *world_rec.rl_defaults, *world_rec.demo_defaults]
    if minutes is not None:
        overrides.append(f"max_minutes={minutes}")
    if iterations is not None:
        overrides.append(f"iterations={iterations}")
    cfg = load_config(RLConfig, None, [*overrides, *(extra or [])], values={"world": world, "init": str(student)})
    t0 = time.time()
    trainer = TDMR1Trainer(cfg, run_dir, quiet=quiet)
    trainer.run(resume=False)
    train_seconds = time.time() - t0
    four = SamplingConfig(steps=trainer.sampling.steps, cfg=1.0, sampler="euler", shift=trainer.sampling.shift)
    models = {"tdm4": EmbeddedT2I.load(student).eval(), "r1": EmbeddedT2I.load(run_dir / "model").eval()}
    tdm = evaluate(models["tdm4"], world, four, out / "eval_tdm4", quiet=quiet, overwrite=True)
    r1 = evaluate(models["r1"], world, four, out / "eval_r1", quiet=quiet, overwrite=True)
    paired = compare_folders(world, out / "eval_tdm4" / "images", out / "eval_r1" / "images")
    tags = list(world_rec.tags)
    focus_tags, focus = trained_tags(cfg, tags, trainer.gate), None
    if focus_tags and focus_tags != tags:  # a subset: measure it with more images a prompt, paired
        focus = {
            name: evaluate(m, world, four, out / f"focus_{name}", FOCUS_IMAGES, None, 0, quiet, True, focus_tags)
            for name, m in models.items()
        }
        focus_paired = compare_folders(world, out / "focus_tdm4" / "images", out / "focus_r1" / "images")
    teacher = _teacher_results(checkpoints, world)
    head_key, head_label = world_rec.headline
    columns = [
        ("teacher @80 NFE (shipped, measured)", teacher),
        ("TDM @4 NFE", tdm),
        (f"TDM-R1 @4 NFE ({trainer.step} it.)", r1),
    ]
    for name in ("before", "after"):
        shutil.copy(run_dir / "samples" / f"{name}.png", out / f"grid_{name}.png")
    if (run_dir / "reward_curve.png").is_file():
        shutil.copy(run_dir / "reward_curve.png", out / "reward_curve.png")
    extra_rows = [(m.label, m.key) for m in world_rec.metrics] + [(k, k) for k in world_rec.quality_keys()]
    body = comparison_table(columns, tags, extra_rows)
    for m in world_rec.metrics:  # per-tag mean reward when the world names it (glyphs: OCR accuracy per length)
        if m.source == "mean_score":
            body += f"\n\n{m.label} per tag:\n\n" + comparison_table(columns, tags, value="mean_score")
    spec = f" ({world_rec.spec})" if world_rec.spec else ""
    if asked != world:
        spec += f", the models shipped for `--world {asked}` on a CPU"
    setup = (
        f"World `{world}`{spec}, benchmark suite (seed 0), accuracy = fraction of images the reward judges "
        f"correct; overall = mean of tags. TDM-R1 ran {trainer.step} iterations of "
        f"{cfg.prompts_per_iteration} prompts x {cfg.group_size} images in {train_seconds / 60:.1f} min "
        f"({reward_queries(cfg, trainer.step)} reward queries, the surrogate's warm-up included)."
    )
    rise = r1[head_key] - tdm[head_key]
    ranking = {r["step"]: round(r["sur_rank"], 3) for r in read_metrics(run_dir) if "sur_rank" in r}
    sections = [
        (
            "Result",
            f"{setup}\n\n{body}\n\nChange in {head_label} from TDM to TDM-R1: {rise:+.3f}. {paired.sentence()}",
        ),
        *([("Trained tags", _focus_section(focus_tags, focus["tdm4"], focus["r1"], focus_paired))] if focus else []),
        ("Reward curve", "![reward curve](reward_curve.png)" + _ranking_sentence(ranking)),
        (
            "Samples (same seeds)",
            "Before (TDM student):\n\n![before](grid_before.png)\n\nAfter (TDM-R1):\n\n![after](grid_after.png)",
        ),
        (
            "Reproduce",
            f"`tdmr1 demo --world {asked} --minutes {minutes}`" + (f" --iterations {iterations}" if iterations else ""),
        ),
    ]
    (out / "results.json").write_text(
        json.dumps(
            {
                "teacher_80nfe": teacher,
                "tdm_4nfe": tdm,
                "r1_4nfe": r1,
                "paired_tdm_vs_r1": paired.to_dict(),
                "trained_tags": focus_tags,
                **(
                    {
                        "trained_tags_eval": {"images_per_prompt": FOCUS_IMAGES, **focus},
                        "paired_trained_tags": focus_paired.to_dict(),
                    }
                    if focus
                    else {}
                ),
                "world": world,
                "iterations": trainer.step,
                "sur_rank_by_iteration": ranking,
                "train_seconds": round(train_seconds, 1),
            },
            indent=2,
        )
    )
    return write_report(out / "report.md", f"tdmr1 demo: TDM-R1 on {world}", sections)
