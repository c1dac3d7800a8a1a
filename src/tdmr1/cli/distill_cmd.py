"""`tdmr1 distill`: TDM distillation of an embedded teacher into a few-step student."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tdmr1.cli.messages import SET_HELP
from tdmr1.config import load_config
from tdmr1.models.checkpoints import resolve_checkpoint

console = Console()


def distill_command(
    world: str = typer.Option("shapes", help="embedded world"),
    teacher: Path | None = typer.Option(None, help="teacher checkpoint folder [default: checkpoints/WORLD/teacher]"),
    config: Path | None = typer.Option(None, help="YAML config (defaults: `tdmr1 config show distill`)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Path = typer.Option(Path("runs/distill"), help="run folder (state, logs, grids, exported student)"),
    resume: bool = typer.Option(True, help="continue from the run folder's state if there is one"),
    backbone: str | None = typer.Option(None, help="not supported: the scale path starts from the authors' TDM LoRA"),
    model_dir: Path | None = typer.Option(None, "--model", help="not supported (see --backbone)"),
) -> None:
    """TDM distillation of the teacher into a 4-step student (data-free, prompts only; embedded teachers)."""
    from tdmr1.tdm.distill import DistillConfig, distill

    if backbone is not None or model_dir is not None:
        from tdmr1.cli.scale_cmd import DISTILL_SCALE_MESSAGE
        from tdmr1.errors import ConfigError

        raise ConfigError(DISTILL_SCALE_MESSAGE)

    teacher_path = resolve_checkpoint(teacher or f"checkpoints/{world}/teacher")
    cfg = load_config(DistillConfig, config, set_, values={"world": world, "teacher": str(teacher_path)})
    console.print(f"student saved to {distill(cfg, out, resume=resume)}")
