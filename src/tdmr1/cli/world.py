"""CLI for the embedded worlds: ``tdmr1 world render|prompts``, ``tdmr1 score`` and ``tdmr1 compare``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from tdmr1.cli.messages import warn
from tdmr1.errors import DataError
from tdmr1.geneval.layout import write_prompt_file, write_prompt_images
from tdmr1.utils.outputs import check_writable_file, prepare_results_dir

world_app = typer.Typer(
    help="Embedded worlds (shapes, glyphs): oracle renders and benchmark / training prompt files.",
    no_args_is_help=True,
)
_console = Console()


@world_app.command("render")
def render_command(
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file: GenEval metadata JSONL or plain text."),
    out: Path = typer.Option(..., "--out", help="Output folder (GenEval layout: <out>/00000/samples/0000.png)."),
    world: str = typer.Option("shapes", "--world", help="World name."),
    images_per_prompt: int = typer.Option(4, "--images-per-prompt", min=1, help="Images per prompt."),
    seed: int = typer.Option(0, "--seed", min=0, help="Image (p, k) uses numpy default_rng([seed, p, k])."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the prompt folders of a used --out."),
) -> None:
    """Render oracle images that satisfy each prompt (a perfect model's output) in GenEval's layout."""
    from tdmr1.worlds import get_world

    w = get_world(world)
    metas = w.read_prompts(prompts)
    prepare_results_dir(out, overwrite)  # refuse a used folder, or clear it: never mix two renders
    with Progress(console=_console, transient=True) as progress:
        task = progress.add_task("rendering", total=len(metas))
        for p, md in enumerate(metas):
            images = [w.render_oracle(md, np.random.default_rng([seed, p, k])) for k in range(images_per_prompt)]
            write_prompt_images(out, p, md, images)
            progress.advance(task)
    _console.print(f"wrote {len(metas)} prompts x {images_per_prompt} images to {out}", highlight=False)


@world_app.command("prompts")
def prompts_command(
    out: Path = typer.Option(..., "--out", help="Output JSONL file (GenEval metadata format)."),
    world: str = typer.Option("shapes", "--world", help="World name."),
    split: str = typer.Option("bench", "--split", help="bench (the fixed benchmark suite) or train (RL prompts)."),
    n: int | None = typer.Option(None, "--n", min=1, help="train only: number of prompts (default: whole pool)."),
    seed: int | None = typer.Option(None, "--seed", help="train only: sampling seed (default: the world's)."),
) -> None:
    """Write the benchmark suite or RL training prompts as a GenEval metadata JSONL file."""
    from tdmr1.worlds import get_world

    w = get_world(world)
    if split == "bench":
        if n is not None or seed is not None:
            raise DataError("--n and --seed apply to --split train only (the benchmark is fixed)")
        metas = w.benchmark_suite()
    elif split == "train":
        kwargs = {"n": n} | ({"seed": seed} if seed is not None else {})
        metas = w.training_prompts(**kwargs)
    else:
        raise DataError(f"unknown split {split!r} (known: bench, train)")
    write_prompt_file(out, metas)
    _console.print(f"wrote {len(metas)} {split} prompts to {out}", highlight=False)


def score_command(
    folder: Path = typer.Argument(..., help="Image folder in GenEval's layout."),
    world: str = typer.Option("shapes", "--world", help="World whose reward (checker, OCR) scores the images."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON here."),
) -> None:
    """Score a folder of generated images: per-tag accuracy table, overall (GenEval rules), world metrics."""
    from tdmr1.eval.scoring import print_report, score_folder, write_report_json
    from tdmr1.worlds import get_world

    if json_out is not None:
        check_writable_file(json_out, "--json file")
    report = score_folder(get_world(world), folder)
    print_report(report, _console)
    if json_out is not None:
        write_report_json(report, json_out)
        _console.print(f"report written to {json_out}", highlight=False)
    if not report.images:
        first = report.problems[0] if report.problems else {"path": folder, "problem": "no images"}
        raise DataError(f"nothing in {folder} could be scored ({first['path']}: {first['problem']})")
    if report.problems:
        warn(
            f"partial score: {len(report.problems)} problem(s) in {folder} (listed above) were left out; "
            f"the accuracies cover the {len(report.images)} images that could be scored"
        )


def compare_command(
    before: Path = typer.Argument(..., help="Image folder (GenEval layout), e.g. the student's evaluation."),
    after: Path = typer.Argument(..., help="Image folder of the same prompts and seeds, e.g. after RL."),
    world: str = typer.Option("shapes", "--world", help="World whose reward judges both folders."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
) -> None:
    """Paired before/after comparison: images gained and lost per tag, exact McNemar p-value."""
    import json

    from rich.table import Table

    from tdmr1.eval.paired import compare_folders

    if json_out is not None:
        check_writable_file(json_out, "--json file")
    result = compare_folders(world, before, after)
    table = Table("tag", "pairs", "gained", "lost")
    for tag, row in result.tags.items():
        table.add_row(tag, str(row["pairs"]), str(row["gained"]), str(row["lost"]))
    _console.print(table)
    _console.print(result.sentence(), highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2))
        _console.print(f"comparison written to {json_out}", highlight=False)
