"""`tdmr1 config show|check`: list every documented field of a config, or validate a YAML file. ``train``
also lists the scale-path fields (``backbone.*``, ``init_lora`` ...; ``scale`` shows that config whole)."""

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
    from tdmr1.r1.config import RLConfig
    from tdmr1.r1.scale_config import ScaleRLConfig
    from tdmr1.tdm.distill import DistillConfig
    from tdmr1.teacher.pretrain import PretrainConfig

    return {"pretrain": PretrainConfig, "distill": DistillConfig, "train": RLConfig, "scale": ScaleRLConfig}


def scale_only_rows() -> list[tuple[str, str, str]]:
    """Rows of the scale-path train config (``ScaleRLConfig``) that the embedded one lacks or sets otherwise."""
    kinds = config_kinds()
    embedded = set(describe_config(kinds["train"]))
    return [row for row in describe_config(kinds["scale"]) if row not in embedded]


def _table(title: str, rows: list[tuple[str, str, str]]) -> Table:
    table = Table(title=title)
    for col in ("key", "default", "meaning"):
        table.add_column(col)
    for key, default, doc in rows:
        table.add_row(key, default, doc)
    return table


def _kind(name: str) -> type:
    kinds = config_kinds()
    if name not in kinds:
        raise ConfigError(f"unknown config kind {name!r} (known: {', '.join(kinds)})")
    return kinds[name]


@config_app.command("show")
def show(kind: str = typer.Argument(..., help="pretrain | distill | train | scale")) -> None:
    """Print every field of a config with its default and meaning (train: the scale-path fields too)."""
    console = Console()
    console.print(_table(f"{kind} config", describe_config(_kind(kind))))
    if kind == "train":
        title = "train config, scale path only (train --model/--backbone, configs/scale/*.yaml; `config show scale`)"
        console.print(_table(title, scale_only_rows()))


@config_app.command("check")
def check(
    kind: str = typer.Argument(...),
    path: Path = typer.Argument(..., help="YAML file"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. --set lr=1e-4"),
) -> None:
    """Validate a YAML config (with overrides); prints 'ok' or one error line."""
    cls = _kind(kind)
    if kind == "train":  # a scale-path file (backbone / init_lora section) is checked as one
        from tdmr1.cli.train_cmd import is_scale_run

        if is_scale_run(path, set_, None, None, None):
            cls = _kind("scale")
    load_config(cls, path, set_)
    typer.echo("ok")
