"""The `tdmr1` typer application: registers the command groups and turns TdmR1Error into one line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tdmr1 import __version__
from tdmr1.cli.messages import one_line, print_error
from tdmr1.errors import Interrupted, TdmR1Error

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
    from tdmr1.cli import (
        config_cmd,
        demo_cmd,
        distill_cmd,
        lora_cmd,
        pretrain_cmd,
        reward_cmd,
        sample_cmd,
        train_cmd,
        world,
    )

    app.add_typer(world.world_app, name="world")
    app.command("score")(world.score_command)
    app.command("compare")(world.compare_command)
    app.add_typer(config_cmd.config_app, name="config")
    app.command("pretrain")(pretrain_cmd.pretrain_command)
    app.command("distill")(distill_cmd.distill_command)
    app.command("train")(train_cmd.train_command)
    app.command("convert-lora")(lora_cmd.convert_lora_command)
    app.command("sample")(sample_cmd.sample_command)
    app.command("eval")(sample_cmd.eval_command)
    app.command("demo")(demo_cmd.demo_command)
    app.command("serve-reward")(reward_cmd.serve_reward_command)


_register()


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Click's exception class and typer's vendored copy of it (typer >= 0.29 raises its own)."""
    types: list[type[BaseException]] = []
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover - typer without click
        pass
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        types.append(VendoredClickException)
    except ImportError:  # typer < 0.29 uses click itself
        pass
    return tuple(types)


def _usage_line(exc: BaseException) -> str:
    """One line for a click/typer usage error: the message plus where to read the command's help."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and getattr(ctx, "command_path", None):
        message = f"{one_line(message)} (see `{ctx.command_path} --help`)"
    return message


def main() -> None:
    """Console-script entry point: user errors (library errors, usage errors, OS errors on the paths given)
    are printed as ONE line on stderr with exit code 2, never as a traceback."""
    click_errors = _click_exception_types()
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into a returned 130 in this mode
    except Interrupted as exc:
        print_error(exc)
        sys.exit(130)
    except TdmR1Error as exc:
        print_error(exc)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print_error("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `tdmr1` or `tdmr1 world` alone: the help text
            typer.echo(exc.format_message())
            sys.exit(0)
        if getattr(exc, "exit_code", 2) == 0:  # pragma: no cover - defensive
            sys.exit(0)
        print_error(_usage_line(exc))
        sys.exit(2)
    except OSError as exc:  # a path the user gave: unwritable, occupied by a file, disk full ...
        print_error(f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc)
        sys.exit(2)
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        if code == 130:
            print_error("interrupted (Ctrl-C)")
        sys.exit(code)


if __name__ == "__main__":
    main()
