"""Markdown reports: per-tag comparison tables of several systems, with linked plots and grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdmr1.utils.io import atomic_write_text


def comparison_table(
    columns: list[tuple[str, dict[str, Any] | None]],
    tags: list[str],
    extra_rows: list[tuple[str, str]] = (),
    value: str = "accuracy",
) -> str:
    """Markdown table: one row per tag (+ overall), one column per (name, results) system; ``extra_rows``
    adds (label, result key) rows such as a world's OCR accuracy or a quality proxy. ``value``: the per-tag
    number shown (``accuracy``, or ``mean_score``: then the overall row is the results' ``mean_score``)."""
    head = "| tag | " + " | ".join(name for name, _ in columns) + " |"
    sep = "| --- | " + " | ".join("---:" for _ in columns) + " |"
    rows = [head, sep]
    for tag in [*tags, "overall"]:
        cells = []
        for _, res in columns:
            if res is None:
                cells.append("n/a")
                continue
            overall_key = "overall" if value == "accuracy" else value
            cell = res.get(overall_key) if tag == "overall" else res["tags"].get(tag)
            cell = cell.get(value) if isinstance(cell, dict) else cell
            cells.append("n/a" if cell is None else f"{cell:.3f}")
        label = f"**{tag}**" if tag == "overall" else tag
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, key in extra_rows:
        cells = ["n/a" if res is None or key not in res else f"{res[key]:.3f}" for _, res in columns]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_report(path: str | Path, title: str, sections: list[tuple[str, str]]) -> Path:
    """Write ``# title`` followed by ``## heading`` + body for each section."""
    parts = [f"# {title}\n"]
    for heading, body in sections:
        parts.append(f"## {heading}\n\n{body.strip()}\n")
    path = Path(path)
    atomic_write_text(path, "\n".join(parts))
    return path
