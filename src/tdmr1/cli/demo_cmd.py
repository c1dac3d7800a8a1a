"""`tdmr1 demo`: TDM-R1 from the shipped 4-step student, then a before/after report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def demo_command(
    world: str = typer.Option("shapes", help="embedded world"),
    minutes: float = typer.Option(10.0, help="wall-time budget of the RL run"),
    iterations: int | None = typer.Option(None, min=1, help="stop after this many iterations instead"),
    out: Path = typer.Option(Path("demo_out"), help="output folder (report.md, grids, curve, evaluations)"),
    checkpoints: Path = typer.Option(Path("checkpoints"), help="folder with the shipped checkpoints"),
    set_: list[str] = typer.Option([], "--set", help="extra RL config overrides"),
) -> None:
    """The main job: TDM-R1 from the shipped 4-step student, then a before/after report."""
    from tdmr1.demo import run_demo

    report = run_demo(world, minutes, iterations, out, checkpoints, set_)
    console.print(report.read_text(), markup=False, highlight=False)
    console.print(f"report written to {report}")
