"""`tdmr1 pretrain`: train the multi-step teacher on a world's captioned images."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tdmr1.cli.messages import SET_HELP
from tdmr1.config import load_config

console = Console()


def pretrain_command(
    world: str = typer.Option("shapes", help="embedded world"),
    config: Path | None = typer.Option(None, help="YAML config (defaults: `tdmr1 config show pretrain`)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Path = typer.Option(Path("runs/pretrain"), help="run folder (state, logs, grids, exported model)"),
    resume: bool = typer.Option(True, help="continue from the run folder's state if there is one"),
) -> None:
    """Pretrain the multi-step teacher on the world's web-like captions (flow matching)."""
    from tdmr1.teacher.pretrain import PretrainConfig, pretrain

    cfg = load_config(PretrainConfig, config, [f"world={world}", *set_])
    model_dir = pretrain(cfg, out, resume=resume)
    console.print(f"teacher saved to {model_dir}")
