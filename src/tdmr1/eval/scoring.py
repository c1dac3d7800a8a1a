"""Score a GenEval-layout image folder with a world's reward: per-image rows, per-tag accuracy by GenEval's rules,
and the ``problems`` left out of the numbers (which they are: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.table import Table

from tdmr1.errors import DataError, TdmR1Error
from tdmr1.geneval.layout import LayoutIssue, iter_layout
from tdmr1.manifest import MANIFEST_FILE, expected_images, read_manifest
from tdmr1.worlds import Metric, World, get_world

_EXACT_TO_RGB = {"RGB", "L", "1", "P"}
_ALPHA_MODES = {"RGBA", "LA", "PA"}
_BATCH = 1024


@dataclass
class ScoreReport:
    """Per-image rows, per-tag summary, overall accuracy, the problems met and the world's named metrics."""

    overall: float
    tags: dict[str, dict[str, Any]]
    images: list[dict[str, Any]]
    problems: list[dict[str, str]] = field(default_factory=list)
    metrics: tuple[Metric, ...] = ()

    @property
    def mean_score(self) -> float:
        """Mean reward over the scored images (0 when none)."""
        return float(np.mean([r["score"] for r in self.images])) if self.images else 0.0

    def _named(self, base: dict[str, Any]) -> dict[str, Any]:
        """The world's metrics (``World.metrics``) read from ``base``, plus their print labels."""
        if not self.metrics:
            return {}
        return {m.key: base[m.source] for m in self.metrics} | {"metric_labels": {m.key: m.label for m in self.metrics}}

    def to_dict(self) -> dict[str, Any]:
        """JSON form with keys ``overall``, ``tags``, ``images``, ``problems`` (and the world's metrics)."""
        out = {"overall": self.overall, "tags": self.tags, "images": self.images, "problems": self.problems}
        return out | self._named({"overall": self.overall, "mean_score": self.mean_score})

    def summary(self) -> dict[str, Any]:
        """Compact form without per-image rows: ``overall``, ``tags``, ``mean_score``, ``scored``,
        ``problems`` (what ``print_summary`` shows), then the world's metrics (e.g. ``ocr_accuracy``) and
        their ``metric_labels`` when the world names any."""
        out = {
            "overall": self.overall,
            "tags": self.tags,
            "mean_score": self.mean_score,
            "scored": len(self.images),
            "problems": self.problems,
        }
        return out | self._named(out)


def load_rgb_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] from a PNG of ``size`` = (height, width); DataError when it cannot be used as is."""
    try:
        with Image.open(path) as img:
            img.load()
            mode, (w, h) = img.mode, img.size
            if (h, w) != tuple(size):
                raise DataError(f"wrong size {w}x{h} (width x height), expected {size[1]}x{size[0]}")
            if mode in _ALPHA_MODES:
                alpha = np.asarray(img.getchannel("A"))
                if alpha.min() < 255:
                    raise DataError(f"mode {mode} with transparent pixels cannot be scored")
                img = img.convert("RGB")
            elif mode == "P" and "transparency" in img.info:
                raise DataError("palette image with transparency cannot be scored")
            elif mode not in _EXACT_TO_RGB:
                raise DataError(f"unsupported image mode {mode} (use 8-bit RGB)")
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"unreadable image: {exc}") from None
    return arr


def score_folder(world: World | str, root: str | Path) -> ScoreReport:
    """Score every image under ``root`` (GenEval layout) with ``world``'s reward."""
    world = get_world(world) if isinstance(world, str) else world
    root = Path(root)
    issues: list[LayoutIssue] = []
    pending: list[tuple[Path, Path, dict[str, Any], np.ndarray]] = []
    manifest = read_manifest(root)
    expected = expected_images(manifest) if manifest is not None else None
    found: set[tuple[str, str]] = set()
    scanned: set[str] = set()  # folders whose images were looked at
    for entry in iter_layout(root, issues):
        if expected is not None:
            index = int(entry.folder.name)
            if index >= len(manifest["prompts"]):
                issues.append(LayoutIssue(entry.folder, f"not in {MANIFEST_FILE} (left over from another run?)"))
                continue
            if entry.metadata.get("prompt") != manifest["prompts"][index]:
                issues.append(
                    LayoutIssue(
                        entry.folder / "metadata.jsonl",
                        f"prompt {entry.metadata.get('prompt')!r} differs from {MANIFEST_FILE}'s "
                        f"{manifest['prompts'][index]!r} (left over from another run?)",
                    )
                )
                continue
        try:
            md = world.resolve_metadata(entry.metadata)
        except DataError as exc:
            issues.append(LayoutIssue(entry.folder / "metadata.jsonl", str(exc)))
            continue
        scanned.add(entry.folder.name)
        for path in entry.images:
            if expected is not None:
                if (entry.folder.name, path.name) not in expected:
                    issues.append(LayoutIssue(path, f"not in {MANIFEST_FILE} (left over from another run?)"))
                    continue
                found.add((entry.folder.name, path.name))
            try:
                pending.append((entry.folder, path, md, load_rgb_image(path, world.image_size)))
            except DataError as exc:
                issues.append(LayoutIssue(path, str(exc)))

    if expected is not None:  # what the manifest lists but is not there (folders with problems already told)
        for folder, name in sorted(set(expected) - found):
            if folder in scanned or not (root / folder).exists():
                issues.append(LayoutIssue(root / folder / "samples" / name, f"missing ({MANIFEST_FILE} lists it)"))
    reward = world.make_reward()
    rows: list[dict[str, Any]] = []
    for start in range(0, len(pending), _BATCH):
        chunk = pending[start : start + _BATCH]
        images = np.stack([item[3] for item in chunk])
        metas = [item[2] for item in chunk]
        prompts = [str(m.get("prompt", "")) for m in metas]
        try:
            out = reward(images, prompts, metas)
        except TdmR1Error as exc:  # a reward failure must not lose the whole run
            issues.extend(LayoutIssue(item[1], f"reward failed: {exc}") for item in chunk)
            continue
        correct = out.info.get("correct", [bool(s >= 1.0) for s in out.scores])
        reasons = out.info.get("reason", [""] * len(chunk))
        for k, (folder, path, md, _) in enumerate(chunk):
            rows.append(
                {
                    "folder": folder.name,
                    "file": path.name,
                    "tag": str(md.get("tag", "untagged")),
                    "prompt": prompts[k],
                    "correct": bool(correct[k]),
                    "score": float(out.scores[k]),
                    "reason": str(reasons[k]),
                }
            )

    tags: dict[str, dict[str, Any]] = {}
    present = {r["tag"] for r in rows}
    for tag in [t for t in world.tags if t in present] + sorted(present - set(world.tags)):
        sel = [r for r in rows if r["tag"] == tag]
        n_ok = sum(r["correct"] for r in sel)
        tags[tag] = {
            "images": len(sel),
            "correct": n_ok,
            "accuracy": n_ok / len(sel),
            "mean_score": float(np.mean([r["score"] for r in sel])),
        }
    if not rows:
        issues.append(LayoutIssue(root, "no image could be scored"))
    overall = float(np.mean([t["accuracy"] for t in tags.values()])) if tags else 0.0
    return ScoreReport(overall, tags, rows, [i.to_dict() for i in issues], world.metrics)


def print_summary(
    result: Mapping[str, Any],
    title: str | None = None,
    console: Console | None = None,
    max_problems: int = 20,
) -> None:
    """Rich table from a summary dict (``ScoreReport.summary()``, possibly with extra run fields):
    one row per tag, the overall accuracy, the world's named metrics (``metric_labels``, e.g. OCR
    accuracy and exact match), then the problems (left out of the accuracies)."""
    console = console or Console()
    table = Table(title=title or "per-tag accuracy")
    for col in ("tag", "images", "correct", "accuracy", "mean score"):
        table.add_column(col, justify="left" if col == "tag" else "right")
    tags = result.get("tags", {})
    for tag, t in tags.items():
        table.add_row(tag, str(t["images"]), str(t["correct"]), f"{t['accuracy']:.3f}", f"{t['mean_score']:.3f}")
    table.add_section()
    n_img = sum(t["images"] for t in tags.values())
    mean = result.get("mean_score")
    table.add_row(
        "overall",
        str(n_img),
        "",
        f"{result.get('overall', 0.0):.3f}",
        "" if mean is None else f"{mean:.3f}",
        style="bold",
    )
    console.print(table)
    labels = result.get("metric_labels") or {}
    named = [f"{label} [bold]{result[key]:.3f}[/]" for key, label in labels.items() if key in result]
    if named:
        console.print("   ".join(named))
    problems = result.get("problems", [])
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/] (left out of the accuracies):")
        for p in problems[:max_problems]:
            console.print(f"  {p['path']}: {p['problem']}", highlight=False)
        if len(problems) > max_problems:
            console.print(f"  ... and {len(problems) - max_problems} more (see the JSON report)")


def print_report(report: ScoreReport, console: Console | None = None, max_problems: int = 20) -> None:
    """Print a report's per-tag table, overall accuracy and problems."""
    print_summary(report.summary(), console=console, max_problems=max_problems)


def write_report_json(report: ScoreReport, path: str | Path) -> Path:
    """Write the report as JSON (keys ``overall``, ``tags``, ``images``, ``problems``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path
