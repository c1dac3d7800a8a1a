"""``manifest.json``: the prompts and per-image seeds of a sampled folder, written before the images, so that
``score`` ignores files of another run and ``compare`` checks two folders pair by pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tdmr1.errors import DataError
from tdmr1.utils.io import atomic_write_text

MANIFEST_FILE = "manifest.json"
FORMAT = "tdmr1-samples-v1"


def write_manifest(
    root: str | Path, prompts: list[str], seeds: list[list[int]], extra: dict[str, Any] | None = None
) -> Path:
    """Describe folder ``root``: prompt i (folder ``{i:05d}``) has images ``{k:04d}.png`` with ``seeds[i][k]``."""
    path = Path(root) / MANIFEST_FILE
    data = {"format": FORMAT, "prompts": list(prompts), "seeds": [list(map(int, s)) for s in seeds], **(extra or {})}
    atomic_write_text(path, json.dumps(data) + "\n")
    return path


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of ``root`` (None when it has none); DataError when it is unreadable or malformed."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        prompts, seeds = data["prompts"], data["seeds"]
        if not isinstance(prompts, list) or not isinstance(seeds, list) or len(prompts) != len(seeds):
            raise ValueError("'prompts' and 'seeds' must be lists of the same length")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: malformed manifest ({exc})") from None
    return data


def expected_images(manifest: dict[str, Any]) -> dict[tuple[str, str], tuple[str, int]]:
    """(folder name, file name) -> (prompt, seed) for every image the manifest describes."""
    out = {}
    for i, (prompt, seeds) in enumerate(zip(manifest["prompts"], manifest["seeds"], strict=True)):
        for k, seed in enumerate(seeds):
            out[(f"{i:05d}", f"{k:04d}.png")] = (prompt, int(seed))
    return out
