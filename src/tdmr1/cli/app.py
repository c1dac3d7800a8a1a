"""The `tdmr1` typer application: registers the command groups and turns TdmR1Error into one line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tdmr1 import __version__
from tdmr1.errors import TdmR1Error

app = typer.Typer(
    name="tdmr1",
    help="TDM-R1: reinforcement learning for few-step diffusion models from non-differentiable rewards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tdmr1 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show version."),
) -> None:
    """TDM-R1 command line."""


def _register() -> None:
    from tdmr1.cli import config_cmd, world

    app.add_typer(world.world_app, name="world")
    app.command("score")(world.score_command)
    app.command("compare")(world.compare_command)
    app.add_typer(config_cmd.config_app, name="config")
    try:
        from tdmr1.cli import models_cmd
    except ImportError:  # model commands land with the teacher
        return
    models_cmd.register(app)


_register()


def main() -> None:
    """Console-script entry point: run the app, print library errors as one line (exit code 2)."""
    try:
        app(standalone_mode=False)
    except TdmR1Error as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
