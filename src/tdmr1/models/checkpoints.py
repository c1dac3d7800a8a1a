"""Where checkpoint folders are: user paths, paths recorded inside a checkpoint (resolved against its own folder
first) and the shipped models ``checkpoints/<world>/<name>``, found from any folder (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import os
from pathlib import Path

from tdmr1.errors import CheckpointError

#: The LoRA adapter file of an exported few-step student or scale-path run (peft names).
ADAPTER_FILE = "adapter.safetensors"

#: First component of a shipped checkpoint's name, e.g. ``checkpoints/shapes/tdm4``.
SHIPPED_PREFIX = "checkpoints"

_PACKAGE = Path(__file__).resolve().parents[1]  # .../tdmr1
WHERE_TO_GET = (
    "the shipped models (checkpoints/{shapes,glyphs}/{teacher,tdm4,r1}) come inside the tdmr1 wheel "
    "and in the checkpoints/ folder of the tdmr1 source repository"
)


def shipped_root() -> Path | None:
    """The folder holding the shipped checkpoints (package data, else a source checkout's), or None."""
    for root in (_PACKAGE / SHIPPED_PREFIX, _PACKAGE.parents[1] / SHIPPED_PREFIX):
        if root.is_dir():
            return root
    return None


def _shipped_candidate(path: Path) -> Path | None:
    root = shipped_root()
    if root is None or not path.parts or path.parts[0] != SHIPPED_PREFIX:
        return None
    return root.joinpath(*path.parts[1:])


def resolve_checkpoint(path: str | Path, relative_to: str | Path | None = None) -> Path:
    """The existing folder (or file) that ``path`` names, as an absolute path; CheckpointError if none.

    An absolute path is taken as is. A relative one is tried, in order, against ``relative_to`` (the
    folder of the checkpoint that recorded it), then, for ``checkpoints/...`` names, the shipped
    models, and then the working directory (without ``relative_to``: the working directory first).
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        shipped = _shipped_candidate(path)
        if relative_to is not None:
            candidates = [Path(relative_to) / path, shipped, path]
        else:
            candidates = [path, shipped]
    tried = [c for c in candidates if c is not None]
    for candidate in tried:
        if candidate.exists():
            return Path(os.path.normpath(candidate.absolute()))
    where = f" (recorded in {relative_to})" if relative_to is not None else ""
    hint = f"; {WHERE_TO_GET}" if _shipped_candidate(path) is not None or shipped_root() is None else ""
    looked = ", ".join(dict.fromkeys(os.path.normpath(c.absolute()) for c in tried))
    raise CheckpointError(f"checkpoint not found: {path}{where}; looked in {looked}{hint}")


def checkpoint_reference(target: str | Path, relative_to: str | Path) -> str:
    """How a checkpoint folder records ``target`` (e.g. its teacher) so that it resolves again later.

    Relative to the recording folder when the two are close (at most two levels up: ``../teacher``,
    ``../../teacher/model``), so the pair can be moved together; else the shipped name
    (``checkpoints/shapes/teacher``) when ``target`` is a shipped model; else the absolute path.
    """
    target, here = (Path(os.path.normpath(Path(p).absolute())) for p in (target, relative_to))
    try:
        rel = Path(os.path.relpath(target, here))
    except ValueError:  # another drive
        rel = None
    if rel is not None and rel.parts.count("..") <= 2:
        return rel.as_posix()
    root = shipped_root()
    if root is not None and target.is_relative_to(root.absolute()):
        return Path(SHIPPED_PREFIX, target.relative_to(root.absolute())).as_posix()
    return str(target)
