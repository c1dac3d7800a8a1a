"""User-facing error and warning lines on stderr: always ONE physical line, never rich markup (no wrapping at
80 columns, no ``[ocr]`` read as a style tag); and the help text of options several commands share."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def one_line(text: object) -> str:
    """``text`` with its lines joined by single spaces (a message must never span lines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_error(message: object) -> None:
    """``error: <message>`` as one line on stderr."""
    _stderr().print(Text.assemble(("error:", "bold red"), " ", one_line(message)))


def warn(message: object) -> None:
    """``warning: <message>`` as one line on stderr."""
    _stderr().print(Text.assemble(("warning:", "bold yellow"), " ", one_line(message)))


SET_HELP = "config override key=value (repeatable), e.g. --set steps=100"
