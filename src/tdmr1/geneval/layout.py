"""GenEval's file formats: prompt files (metadata JSONL or plain text, one prompt a line) and the image folder
layout ``<out>/00000/metadata.jsonl`` + ``<out>/00000/samples/0000.png`` (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tdmr1.errors import DataError

#: GenEval's six tags.
GENEVAL_TAGS: tuple[str, ...] = (
    "single_object",
    "two_object",
    "counting",
    "colors",
    "position",
    "color_attr",
)
#: GenEval's relations for ``position`` clauses.
GENEVAL_RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
_CLAUSE_KEYS = {"class", "count", "color", "position"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def validate_geneval_metadata(
    md: Any,
    *,
    known_tags: Sequence[str] | None = GENEVAL_TAGS,
    classes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    relations: Sequence[str] = GENEVAL_RELATIONS,
) -> dict[str, Any]:
    """Check one metadata dict's structure (and vocabulary when ``classes``/``colors`` are given).

    Returns the dict unchanged; raises DataError with a one-line description of the first problem.
    Extra top-level keys are allowed; clause keys are limited to class, count, color, position.
    """
    if not isinstance(md, Mapping):
        raise DataError(f"metadata must be a JSON object, got {type(md).__name__}")
    if "prompt" in md and not isinstance(md["prompt"], str):
        raise DataError(f"'prompt' must be a string, got {md['prompt']!r}")
    if "tag" in md and known_tags is not None and md["tag"] not in known_tags:
        raise DataError(f"unknown tag {md['tag']!r} (known: {', '.join(known_tags)})")
    if "include" not in md:
        raise DataError("metadata has no 'include' clauses")
    for key in ("include", "exclude"):
        if key not in md:
            continue
        clauses = md[key]
        if not isinstance(clauses, list) or (key == "include" and not clauses):
            raise DataError(f"'{key}' must be a non-empty list of clauses, got {clauses!r}")
        for idx, clause in enumerate(clauses):
            where = f"{key}[{idx}]"
            if not isinstance(clause, Mapping):
                raise DataError(f"{where} must be an object, got {clause!r}")
            extra = set(clause) - _CLAUSE_KEYS if key == "include" else set(clause) - {"class", "count"}
            if extra:
                raise DataError(f"{where} has unknown keys {sorted(extra)}")
            cls = clause.get("class")
            if not isinstance(cls, str):
                raise DataError(f"{where} needs a string 'class', got {cls!r}")
            if classes is not None and cls not in classes:
                raise DataError(f"{where}: unknown class {cls!r} (known: {', '.join(classes)})")
            count = clause.get("count")
            if not _is_int(count) or count < 1:
                raise DataError(f"{where} needs an integer 'count' >= 1, got {count!r}")
            if "color" in clause:
                color = clause["color"]
                if not isinstance(color, str) or (colors is not None and color not in colors):
                    known = f" (known: {', '.join(colors)})" if colors is not None else ""
                    raise DataError(f"{where}: unknown color {color!r}{known}")
            if "position" in clause:
                pos = clause["position"]
                ok = isinstance(pos, list | tuple) and len(pos) == 2
                if not ok or pos[0] not in relations or not _is_int(pos[1]) or not 0 <= pos[1] < idx:
                    raise DataError(
                        f"{where}: 'position' must be [relation, index of an earlier include clause] "
                        f"with relation in {list(relations)}, got {pos!r}"
                    )
    return dict(md)


def read_prompt_file(
    path: str | Path,
    *,
    known_tags: Sequence[str] | None = GENEVAL_TAGS,
    require_include: bool = True,
    resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Read a GenEval metadata JSONL or plain-text prompt file (blank lines skipped).

    ``resolve`` (a world's ``resolve_metadata``) completes and checks each entry; its DataError is
    reported with ``file:line`` like the file's own errors.

    JSON lines are validated structurally; errors raise DataError naming ``file:line``. With
    ``require_include=False`` a JSON line without ``include`` clauses only needs a string ``prompt``
    (metadata of worlds that are not object-based, e.g. glyphs' ``{"prompt", "tag", "text"}``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompt file not found: {path}")
    items: list[dict[str, Any]] = []
    data = path.read_bytes()
    if b"\0" in data:
        raise DataError(f"prompt file {path} is a binary file, not text (JSONL or one prompt a line)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (JSONL or one prompt a line)") from None
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("["):
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                pass  # plain text that happens to start with "["
            else:
                raise DataError(f"{path}:{lineno}: a JSON line must be an object with a 'prompt', not a list")
        if line.startswith("{"):
            try:
                md = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(f"{path}:{lineno}: invalid JSON (nested too deeply)") from None
            try:
                if require_include or not isinstance(md, dict) or "include" in md:
                    md = validate_geneval_metadata(md, known_tags=known_tags)
                elif not isinstance(md.get("prompt"), str):
                    raise DataError(f"metadata needs a string 'prompt', got {md.get('prompt')!r}")
            except DataError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from None
        else:
            md = {"prompt": line}
        if resolve is not None:
            try:
                md = resolve(md)
            except DataError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from None
        items.append(md)
    if not items:
        raise DataError(f"prompt file {path} holds no prompts")
    return items


def write_prompt_file(path: str | Path, metadata: Sequence[Mapping[str, Any]]) -> Path:
    """Write metadata dicts as JSONL (one compact JSON object a line, GenEval's key order kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for md in metadata:
            fh.write(json.dumps(md) + "\n")
    return path


def prompt_dir(out: str | Path, index: int) -> Path:
    """``<out>/<index:05d>``."""
    return Path(out) / f"{index:05d}"


def write_prompt_images(
    out: str | Path, index: int, metadata: Mapping[str, Any], images: np.ndarray | Sequence[np.ndarray]
) -> Path:
    """Write one prompt's folder: ``metadata.jsonl`` and ``samples/0000.png`` ... (uint8 HxWx3 each)."""
    folder = prompt_dir(out, index)
    samples = folder / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text(json.dumps(metadata) + "\n", encoding="utf-8")
    for k, img in enumerate(images):
        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
            raise DataError(f"image {k} for prompt {index} must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
        Image.fromarray(arr).save(samples / f"{k:04d}.png")
    return folder


@dataclass(frozen=True)
class LayoutEntry:
    """One readable prompt folder: its path, metadata and sorted sample image paths."""

    folder: Path
    metadata: dict[str, Any]
    images: list[Path]


@dataclass(frozen=True)
class LayoutIssue:
    """Something in the layout that could not be used (path + one-line problem)."""

    path: Path
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "problem": self.problem}


def iter_layout(root: str | Path, issues: list[LayoutIssue] | None = None) -> Iterator[LayoutEntry]:
    """Yield the prompt folders of a GenEval layout in numeric order.

    Problems (missing/unreadable/malformed ``metadata.jsonl``, missing or empty ``samples/``) are
    appended to ``issues`` and the folder is skipped; with ``issues=None`` the first problem raises
    DataError instead. A missing root or a root without any numbered folder always raises DataError.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not folders:
        raise DataError(f"{root} holds no prompt folders (expected <dir>/00000/metadata.jsonl + samples/)")

    def report(path: Path, problem: str) -> None:
        if issues is None:
            raise DataError(f"{path}: {problem}")
        issues.append(LayoutIssue(path, problem))

    for folder in folders:
        md_path = folder / "metadata.jsonl"
        if not md_path.is_file():
            report(md_path, "missing metadata.jsonl")
            continue
        try:
            lines = [ln for ln in md_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if len(lines) != 1:
                raise ValueError(f"expected one JSON line, found {len(lines)}")
            metadata = json.loads(lines[0])
            if not isinstance(metadata, dict):
                raise ValueError("metadata is not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            report(md_path, f"malformed metadata: {exc}")
            continue
        samples = folder / "samples"
        images = sorted(samples.glob("*.png")) if samples.is_dir() else []
        if not images:
            report(samples, "missing samples (no PNG images)")
            continue
        yield LayoutEntry(folder, metadata, images)


def scan_layout(root: str | Path) -> tuple[list[LayoutEntry], list[LayoutIssue]]:
    """All usable entries of a layout plus the list of problems found (never raises for bad folders)."""
    issues: list[LayoutIssue] = []
    entries = list(iter_layout(root, issues))
    return entries, issues
