"""`tdmr1 config show|check`: list every documented field of a config, or validate a YAML file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tdmr1.config import describe_config, load_config
from tdmr1.errors import ConfigError

config_app = typer.Typer(help="Inspect and validate configs.", no_args_is_help=True)


def config_kinds() -> dict[str, type]:
    """Config name -> dataclass, for every trainer that exists."""
    from tdmr1.training.distill import DistillConfig
    from tdmr1.training.pretrain import PretrainConfig
    from tdmr1.training.rl_config import RLConfig

    return {"pretrain": PretrainConfig, "distill": DistillConfig, "train": RLConfig}


def _kind(name: str) -> type:
    kinds = config_kinds()
    if name not in kinds:
        raise ConfigError(f"unknown config kind {name!r} (known: {', '.join(kinds)})")
    return kinds[name]


@config_app.command("show")
def show(kind: str = typer.Argument(..., help="pretrain | distill | train")) -> None:
    """Print every field of a config with its default and meaning."""
    table = Table(title=f"{kind} config")
    for col in ("key", "default", "meaning"):
        table.add_column(col)
    for key, default, doc in describe_config(_kind(kind)):
        table.add_row(key, default, doc)
    Console().print(table)


@config_app.command("check")
def check(
    kind: str = typer.Argument(...),
    path: Path = typer.Argument(..., help="YAML file"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. --set lr=1e-4"),
) -> None:
    """Validate a YAML config (with overrides); prints 'ok' or one error line."""
    load_config(_kind(kind), path, set_)
    typer.echo("ok")
