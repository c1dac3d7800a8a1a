"""Output paths, checked before any work starts: a folder that cannot be created or written, a path
occupied by a file, a used results folder (refused unless overwriting, then replaced cleanly), and the
temporary files a killed atomic write leaves behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tdmr1.errors import DataError

#: Suffix of ``atomic_writer``'s temporary files (``.<name>.<random>.tmp`` next to the target).
TMP_SUFFIX = ".tmp"


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) and prove it writable by creating a file in it; DataError otherwise."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise DataError(f"{what} {path}: {parent} is a file, not a folder")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=TMP_SUFFIX, dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"{what} {path} is not writable ({exc.strerror or exc})") from None
    return path


def check_writable_file(path: str | Path, what: str = "output file") -> Path:
    """DataError unless ``path`` can be written as a file: not a folder, its folder creatable and writable."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, not a file")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{what} {path} is not writable")
    return path


def clean_orphan_tmp(folder: str | Path) -> list[Path]:
    """Remove the ``.<name>.*.tmp`` files that writes killed midway left under ``folder``; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.rglob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _is_layout_entry(path: Path) -> bool:
    """A prompt folder (``00000``) or a file that ``sample``/``eval`` write."""
    return (path.is_dir() and path.name.isdigit()) or path.name in OWNED_FILES


#: Files that ``sample``/``eval`` write next to the prompt folders (replaced by ``--overwrite``).
OWNED_FILES = ("manifest.json", "results.json", "images")


def prepare_results_dir(path: str | Path, overwrite: bool, what: str = "--out") -> Path:
    """A results folder that holds nothing from an earlier run.

    An empty or missing folder is created; a used one (anything in it) is refused unless ``overwrite``,
    which removes what ``sample``/``eval`` write there (prompt folders ``00000``..., ``manifest.json``,
    ``results.json``, ``images/``) and leaves unrelated files alone.
    """
    path = ensure_writable_dir(path, what)
    used = sorted(p.name for p in path.iterdir())
    if not used:
        return path
    if not overwrite:
        first = ", ".join(used[:3]) + (", ..." if len(used) > 3 else "")
        raise DataError(
            f"{what} {path} is not empty ({first}): results of different runs must not mix; "
            "pass --overwrite to replace them, or choose another folder"
        )
    for entry in path.iterdir():
        if _is_layout_entry(entry):
            try:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            except OSError as exc:
                raise DataError(f"cannot replace {entry} ({exc.strerror or exc})") from None
    return path
