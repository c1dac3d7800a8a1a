"""GenEval's scoring rules on detected objects (``evaluate`` of GenEval's ``evaluate_images.py``): the binary
``correct`` and a partial-credit ``score`` (1 exactly when correct), shared by the ShapesEval checker and the
detector reward on real images (the rules: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdmr1.geneval.layout import GENEVAL_RELATIONS

#: GenEval's colour names (``COLORS`` of ``evaluate_images.py``), in its order (reasons list colours so).
GENEVAL_COLORS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
)
#: GenEval's POSITION_THRESHOLD: each axis of the centre offset shrinks by this x (sum of box sizes).
POSITION_THRESHOLD: float = 0.1


@dataclass(frozen=True)
class Detection:
    """One detected object: the ShapesEval checker's (or derived from a rendered ``Obj``) or a detector's.

    ``bbox`` = (x0, y0, x1, y1) in pixels with exclusive x1, y1, so the box size is (x1 - x0, y1 - y0)
    and its centre ((x0 + x1) / 2, (y0 + y1) / 2); real detectors give float boxes. ``cls`` is
    ``"unknown"`` when no class fits; ``area`` is a pixel count (the checker's component, a detector's
    mask or box).
    """

    cls: str
    color: str
    bbox: tuple[float, float, float, float]
    area: float

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"class": self.cls, "color": self.color, "bbox": list(self.bbox), "area": self.area}


@dataclass(frozen=True)
class Evaluation:
    """GenEval verdict (``correct``), partial credit ``score`` in [0, 1] and a readable ``reason``."""

    correct: bool
    score: float
    reason: str


def relative_position(box_a: Sequence[float], box_b: Sequence[float]) -> set[str]:
    """Relations of box A with respect to box B (GenEval's ``relative_position``).

    offset = centre_A - centre_B; each axis is shrunk toward zero by 0.1 x (size_A + size_B) on that
    axis (clamped at zero); if both shrunk components are ~0 there is no relation; otherwise the
    shrunk offset is divided by the norm of the *raw* offset and ``left of: dx < -0.5``, ``right of:
    dx > 0.5``, ``above: dy < -0.5``, ``below: dy > 0.5`` (y grows downwards, so above = smaller y).
    Boxes are (x0, y0, x1, y1). Plain-float arithmetic in GenEval's order (fast, same results).
    """
    ax0, ay0, ax1, ay1 = (float(v) for v in box_a[:4])
    bx0, by0, bx1, by1 = (float(v) for v in box_b[:4])
    off_x = (ax0 + ax1) / 2 - (bx0 + bx1) / 2
    off_y = (ay0 + ay1) / 2 - (by0 + by1) / 2
    shrink_x = POSITION_THRESHOLD * (abs(ax1 - ax0) + abs(bx1 - bx0))
    shrink_y = POSITION_THRESHOLD * (abs(ay1 - ay0) + abs(by1 - by0))
    rev_x = math.copysign(max(abs(off_x) - shrink_x, 0.0), off_x) if off_x else 0.0
    rev_y = math.copysign(max(abs(off_y) - shrink_y, 0.0), off_y) if off_y else 0.0
    if abs(rev_x) < 1e-3 and abs(rev_y) < 1e-3:
        return set()
    norm = math.sqrt(off_x * off_x + off_y * off_y)
    dx, dy = rev_x / norm, rev_y / norm
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def _rel_text(rels: set[str]) -> str:
    return " and ".join(r for r in GENEVAL_RELATIONS if r in rels) or "no relation to"


def _color_order(colors: Sequence[str]) -> list[str]:
    """The distinct ``colors``: GenEval's names in GenEval's order, then any others sorted."""
    return [c for c in GENEVAL_COLORS if c in colors] + sorted(set(colors) - set(GENEVAL_COLORS))


def group_by_class(objects: Sequence[Detection]) -> dict[str, list[Detection]]:
    """Objects per class, largest area first (stable: ties keep detection order); ``unknown`` dropped."""
    groups: dict[str, list[Detection]] = {}
    for obj in sorted(objects, key=lambda o: -o.area):
        if obj.cls != "unknown":
            groups.setdefault(obj.cls, []).append(obj)
    return groups


def evaluate(
    objects: Sequence[Detection] | Mapping[str, Sequence[Detection]], metadata: Mapping[str, Any]
) -> Evaluation:
    """Apply GenEval's rules and the partial-credit terms to ``objects`` for one prompt's metadata.

    ``objects`` is either a flat list of detections or a ``class -> list`` mapping already ordered by
    confidence. ``metadata`` must be valid (see ``prompts.validate_metadata``).
    """
    groups = dict(objects) if isinstance(objects, Mapping) else group_by_class(objects)
    includes = list(metadata.get("include", []))
    excludes = list(metadata.get("exclude", []))
    correct = True
    reasons: list[str] = []
    terms: list[float] = []
    matched_groups: list[Sequence[Detection] | None] = []
    found_groups: list[Sequence[Detection] | None] = []  # top objects when the count suffices

    for req in includes:
        cls, n_req = req["class"], int(req["count"])
        all_found = groups.get(cls, [])
        found = list(all_found[:n_req])
        n_found = len(all_found)
        matched = True
        # Count term (exclude clauses of the same class give the upper bound).
        bounds = [int(ex["count"]) - 1 for ex in excludes if ex["class"] == cls]
        upper = min(bounds) if bounds else None
        dist = max(0, n_req - n_found, (n_found - upper) if upper is not None else 0)
        terms.append(float(min(1.0, max(0.0, 1.0 - dist / n_req))))
        enough = len(found) >= n_req
        found_groups.append(found if enough else None)
        if not enough:
            correct = matched = False
            reasons.append(f"expected {cls}>={n_req}, found {len(found)}")
        if "color" in req:
            color = req["color"]
            n_color = sum(1 for o in found if o.color == color)
            terms.append(n_color / n_req)
            if enough and n_color < n_req:
                correct = matched = False
                colors = [o.color for o in found]
                reasons.append(
                    f"expected {color} {cls}>={n_req}, found {n_color} {color}; and "
                    + ", ".join(f"{colors.count(c)} {c}" for c in _color_order(colors))
                )
        if "position" in req:
            rel, target = req["position"][0], int(req["position"][1])
            # Partial-credit term: judged on the found groups, independent of colour terms.
            target_found = found_groups[target] if target < len(found_groups) else None
            ok = (
                enough
                and target_found is not None
                and all(rel in relative_position(o.bbox, t.bbox) for o in found for t in target_found)
            )
            terms.append(1.0 if ok else 0.0)
            # GenEval verdict: only when this clause matched so far.
            if matched:
                target_group = matched_groups[target] if target < len(matched_groups) else None
                if target_group is None:
                    correct = matched = False
                    reasons.append(f"no target for {cls} to be {rel}")
                else:
                    for o in found:
                        for t in target_group:
                            rels = relative_position(o.bbox, t.bbox)
                            if rel not in rels:
                                correct = matched = False
                                reasons.append(f"expected {cls} {rel} target, found {_rel_text(rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)

    include_classes = {req["class"] for req in includes}
    for req in excludes:
        cls, n_max = req["class"], int(req["count"])
        n_found = len(groups.get(cls, []))
        fail = n_found >= n_max
        if cls not in include_classes:
            terms.append(0.0 if fail else 1.0)
        if fail:
            correct = False
            reasons.append(f"expected {cls}<{n_max}, found {n_found}")

    score = float(np.mean(terms)) if terms else 1.0
    return Evaluation(correct=correct, score=score, reason="; ".join(reasons) if reasons else "ok")
