"""The exact checker: any RGB uint8 image -> objects (class, colour, box) -> GenEval verdict and score, vectorised
over a batch (the detection steps: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from tdmr1.errors import DataError
from tdmr1.reward_protocol import RewardOutput, validate_images
from tdmr1.worlds.shapes.palette import (
    CANVAS,
    CLASSES,
    COLOR_NAMES,
    FOREGROUND_THRESHOLD,
    MIN_COMPONENT_PIXELS,
    PALETTE,
)
from tdmr1.worlds.shapes.prompts import resolve_metadata
from tdmr1.worlds.shapes.rules import Detection, evaluate

#: A component is ``unknown`` when its best template IoU is below this.
MIN_IOU: float = 0.6
#: ... or when max(h, w) / min(h, w) of its box exceeds this (every shape has a square box).
MAX_ASPECT: float = 1.5

_MAX_SIDE = 64  # template-area tables cover boxes up to this side (larger inputs are rejected anyway)
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True  # 8-connected inside a plane, never across planes


def _template_inside(i: np.ndarray, j: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Bool [4, ...]: whether local pixel (i, j) of an h x w box lies in each class template."""
    square = np.ones(np.broadcast(i, j, h, w).shape, dtype=bool)
    circle = (2 * j + 1 - w) ** 2 * h**2 + (2 * i + 1 - h) ** 2 * w**2 <= (h * w) ** 2
    triangle = np.abs(2 * j + 1 - w) * h <= (i + 1) * w
    tw, th = np.round(w / 3).astype(np.int64), np.round(h / 3).astype(np.int64)
    aw, ah = (w - tw) // 2, (h - th) // 2
    cross = ((j >= aw) & (j < aw + tw)) | ((i >= ah) & (i < ah + th))
    inside = {"circle": circle, "square": square, "triangle": triangle, "cross": cross}
    return np.stack([inside[c] for c in CLASSES])


def _template_areas() -> np.ndarray:
    """int64 [4, S+1, S+1]: pixel count of each class template in an h x w box."""
    areas = np.zeros((len(CLASSES), _MAX_SIDE + 1, _MAX_SIDE + 1), dtype=np.int64)
    grid = np.arange(_MAX_SIDE)
    for h in range(1, _MAX_SIDE + 1):
        ws = np.arange(1, _MAX_SIDE + 1)[:, None, None]
        i = grid[:h][None, :, None]
        j = grid[None, None, :]
        valid = j < ws  # [W, 1, S]
        inside = _template_inside(i, j, np.int64(h), ws) & valid
        areas[:, h, 1:] = inside.sum(axis=(2, 3))
    return areas


_TEMPLATE_AREAS = _template_areas()


def detect_batch(images: np.ndarray) -> list[list[Detection]]:
    """Objects of every image of a uint8 [N, H, W, 3] batch (H, W <= 64), in raster order of labels."""
    n_img, height, width = images.shape[:3]
    result: list[list[Detection]] = [[] for _ in range(n_img)]
    fg = images.max(axis=-1) > FOREGROUND_THRESHOLD
    img_idx, rows, cols = np.nonzero(fg)
    if img_idx.size == 0:
        return result
    px = images[img_idx, rows, cols].astype(np.int32)
    dist = np.zeros((px.shape[0], len(PALETTE)), dtype=np.int32)
    for k in range(3):
        dist += (px[:, k, None] - PALETTE[None, :, k]) ** 2
    color = dist.argmin(axis=1)
    keys, plane = np.unique(img_idx * len(PALETTE) + color, return_inverse=True)
    volume = np.zeros((keys.size, height, width), dtype=bool)
    volume[plane, rows, cols] = True
    labels, _ = ndimage.label(volume, structure=_STRUCTURE)
    ids = labels[plane, rows, cols]

    order = np.argsort(ids, kind="stable")
    ids_s, rows_s, cols_s, plane_s = ids[order], rows[order], cols[order], plane[order]
    starts = np.flatnonzero(np.r_[True, ids_s[1:] != ids_s[:-1]])
    area = np.diff(np.r_[starts, ids_s.size])
    r0 = np.minimum.reduceat(rows_s, starts)
    r1 = np.maximum.reduceat(rows_s, starts) + 1
    c0 = np.minimum.reduceat(cols_s, starts)
    c1 = np.maximum.reduceat(cols_s, starts) + 1
    comp = np.repeat(np.arange(starts.size), area)

    # Shape class from the component's core: its pixels at >= CORE_FRACTION of its peak brightness
    # (max channel). On clean renders the core is the whole component; on blurry images it undoes the
    # halo that the > 60 foreground threshold adds around each shape.
    bright = images[img_idx, rows, cols].max(axis=-1)[order].astype(np.int32)
    peak = np.maximum.reduceat(bright, starts)
    core = 2 * bright >= peak[comp]  # CORE_FRACTION = 1/2, exact in integers
    cc, cr, ccol = comp[core], rows_s[core], cols_s[core]
    core_starts = np.flatnonzero(np.r_[True, cc[1:] != cc[:-1]])  # every component keeps its peak pixel
    core_area = np.diff(np.r_[core_starts, cc.size])
    q0 = np.minimum.reduceat(cr, core_starts)
    q1 = np.maximum.reduceat(cr, core_starts) + 1
    p0 = np.minimum.reduceat(ccol, core_starts)
    p1 = np.maximum.reduceat(ccol, core_starts) + 1
    h, w = (q1 - q0).astype(np.int64), (p1 - p0).astype(np.int64)
    inside = _template_inside((cr - q0[cc]).astype(np.int64), (ccol - p0[cc]).astype(np.int64), h[cc], w[cc])
    inter = np.stack([np.bincount(cc, weights=inside[k], minlength=starts.size) for k in range(len(CLASSES))])
    t_area = _TEMPLATE_AREAS[:, np.minimum(h, _MAX_SIDE), np.minimum(w, _MAX_SIDE)]
    iou = inter / (core_area[None] + t_area - inter)
    best = iou.argmax(axis=0)
    best_iou = iou[best, np.arange(starts.size)]
    aspect = np.maximum(h, w) / np.minimum(h, w)
    known = (best_iou >= MIN_IOU) & (aspect <= MAX_ASPECT)

    key = keys[plane_s[starts]]
    comp_img, comp_color = key // len(PALETTE), key % len(PALETTE)
    for k in np.flatnonzero(area >= MIN_COMPONENT_PIXELS):
        result[comp_img[k]].append(
            Detection(
                cls=CLASSES[best[k]] if known[k] else "unknown",
                color=COLOR_NAMES[comp_color[k]],
                bbox=(int(c0[k]), int(r0[k]), int(c1[k]), int(r1[k])),
                area=int(area[k]),
            )
        )
    return result


def detect(image: np.ndarray) -> list[Detection]:
    """Objects of one uint8 [H, W, 3] image."""
    return detect_batch(image[None])[0]


@dataclass
class CheckResult:
    """Verdict for one image: GenEval ``correct``, partial ``score``, ``reason`` and the objects found."""

    correct: bool
    score: float
    reason: str
    objects: list[Detection] = field(default_factory=list)


def _as_image(image: np.ndarray) -> np.ndarray:
    validate_images(np.asarray(image)[None], CANVAS, CANVAS)
    return np.asarray(image)


def check_image(image: np.ndarray, metadata: dict[str, Any]) -> CheckResult:
    """Check one uint8 [32, 32, 3] image against one prompt's metadata (or ``{"prompt": ...}``)."""
    image = _as_image(image)
    md = resolve_metadata(metadata)
    objects = detect(image)
    ev = evaluate(objects, md)
    return CheckResult(ev.correct, ev.score, ev.reason, objects)


class ShapesChecker:
    """The ShapesEval reward: ``(images, prompts, metadata) -> RewardOutput``.

    ``scores`` = partial-credit score (float32); ``info`` holds ``correct`` (GenEval binary) and
    ``reason`` per image. Metadata may be GenEval clauses or ``{"prompt": ...}`` for a grammar prompt;
    malformed metadata or an unknown tag raises DataError naming the item.
    """

    name = "shapes"

    def __call__(self, images: np.ndarray, prompts: Sequence[str], metadata: Sequence[dict[str, Any]]) -> RewardOutput:
        validate_images(images, CANVAS, CANVAS)
        n = images.shape[0]
        if len(prompts) != n or len(metadata) != n:
            raise DataError(f"got {n} images but {len(prompts)} prompts and {len(metadata)} metadata items")
        resolved = []
        for k, md in enumerate(metadata):
            try:
                resolved.append(resolve_metadata(md))
            except DataError as exc:
                raise DataError(f"metadata item {k}: {exc}") from None
        objects = detect_batch(images)
        scores = np.empty(n, dtype=np.float32)
        correct: list[bool] = []
        reasons: list[str] = []
        for k in range(n):
            ev = evaluate(objects[k], resolved[k])
            scores[k] = ev.score
            correct.append(ev.correct)
            reasons.append(ev.reason)
        return RewardOutput(scores=scores, info={"correct": correct, "reason": reasons})
