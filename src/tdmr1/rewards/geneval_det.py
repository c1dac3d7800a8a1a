"""GenEval's rules on a detector you supply (``geneval-det``): GenEval's selection of detections, colours from the
detector or a hue rule, the shared rules of ``tdmr1.geneval.rules`` (details: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tdmr1.errors import ConfigError, DataError, RewardError
from tdmr1.geneval.layout import validate_geneval_metadata
from tdmr1.geneval.rules import GENEVAL_COLORS, Detection, Evaluation, evaluate
from tdmr1.reward_protocol import RewardOutput
from tdmr1.rewards.colors import name_color
from tdmr1.rewards.detectors import Detector, Found, load_detector, parse_detections
from tdmr1.rewards.images import as_image_list

#: GenEval's defaults (``evaluate_images.py`` options threshold, counting_threshold, max_objects, max_overlap).
THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16
NMS_THRESHOLD = 1.0
COLOR_MODES = ("auto", "detector", "hue")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """GenEval's ``compute_iou`` (inclusive pixel boxes: each side counts ``x1 - x0 + 1``)."""

    def area(box: Sequence[float]) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def keep_objects(
    found: Sequence[Found], threshold: float, max_objects: int = MAX_OBJECTS, nms_threshold: float = NMS_THRESHOLD
) -> dict[str, list[Found]]:
    """GenEval's selection: per label, confidence ``> threshold``, most confident first (stable), at most
    ``max_objects``, then greedy suppression of boxes with IoU ``>= nms_threshold`` (1.0: none)."""
    groups: dict[str, list[Found]] = {}
    for obj in sorted(found, key=lambda o: -o.score):
        if obj.score > threshold:
            groups.setdefault(obj.label, []).append(obj)
    kept: dict[str, list[Found]] = {}
    for label, objs in groups.items():
        todo, chosen = objs[:max_objects], []
        while todo:
            best = todo.pop(0)
            chosen.append(best)
            if nms_threshold != 1:
                todo = [o for o in todo if box_iou(best.box, o.box) < nms_threshold]
        kept[label] = chosen
    return kept


class GenEvalDetReward:
    """GenEval's verdict and partial-credit score of each image from a user-supplied detector.

    Args:
        detector: a callable, ``module:attr``, ``file.py:attr`` or ``http://host:port`` (``rewards.detectors``).
        threshold, counting_threshold, max_objects, nms_threshold: GenEval's selection (its defaults).
        color: ``auto``, ``detector`` or ``hue`` (module doc).
        detector_options: ``timeout_s``, ``retries``, ``backoff_s``, ``batch_size``, ``token`` of an http detector.
    """

    name = "geneval-det"

    def __init__(
        self,
        detector: str | Detector,
        threshold: float = THRESHOLD,
        counting_threshold: float = COUNTING_THRESHOLD,
        max_objects: int = MAX_OBJECTS,
        nms_threshold: float = NMS_THRESHOLD,
        color: str = "auto",
        **detector_options: Any,
    ) -> None:
        if color not in COLOR_MODES:
            raise ConfigError(f"geneval-det: color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
        for key, value in (("threshold", threshold), ("counting_threshold", counting_threshold)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"geneval-det: {key} must be a number in [0, 1], got {value!r}")
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
            raise ConfigError(f"geneval-det: max_objects must be an integer >= 1, got {max_objects!r}")
        self.detector = load_detector(detector, **detector_options)
        self.source = detector if isinstance(detector, str) else getattr(detector, "__name__", type(detector).__name__)
        self.threshold, self.counting_threshold = float(threshold), float(counting_threshold)
        self.max_objects, self.nms_threshold, self.color = max_objects, float(nms_threshold), color

    def _metadata(self, md: Any, k: int) -> dict[str, Any]:
        colors = GENEVAL_COLORS if self.color == "hue" else None
        try:
            return validate_geneval_metadata(md, known_tags=None, colors=colors)
        except DataError as exc:
            raise DataError(
                f"metadata item {k}: {exc} (geneval-det needs GenEval metadata: a JSONL prompt file)"
            ) from None

    def _color(self, image: np.ndarray, obj: Found) -> str:
        if self.color != "hue" and obj.color is not None:
            return obj.color
        if self.color == "detector":
            raise RewardError(f"detector {self.source} gave no 'color' for a {obj.label} (color=detector)")
        return name_color(image, obj.box, obj.mask)

    def judge(self, image: np.ndarray, found: Sequence[Found], md: Mapping[str, Any]) -> tuple[Evaluation, list]:
        """GenEval's verdict on one image from its detections, and the objects kept (as JSON-friendly dicts).

        Colours are named only for the objects a colour clause looks at (the top ``count`` of its class),
        as GenEval runs CLIP only on those.
        """
        threshold = self.counting_threshold if md.get("tag") == "counting" else self.threshold
        kept = keep_objects(found, threshold, self.max_objects, self.nms_threshold)
        colored: dict[str, int] = {}
        for req in md["include"]:
            if "color" in req:
                colored[req["class"]] = max(colored.get(req["class"], 0), int(req["count"]))
        groups: dict[str, list[Detection]] = {}
        summary = []
        for label, objs in kept.items():
            for j, obj in enumerate(objs):
                color = self._color(image, obj) if j < colored.get(label, 0) else (obj.color or "")
                groups.setdefault(label, []).append(Detection(cls=label, color=color, bbox=obj.box, area=obj.area))
                summary.append({**obj.to_dict(), **({"color": color} if color else {})})
        return evaluate(groups, md), summary

    def __call__(
        self, images: np.ndarray | Sequence[np.ndarray], prompts: list[str], metadata: list[Mapping[str, Any]]
    ) -> RewardOutput:
        batch = as_image_list(images)
        n = len(batch)
        if len(prompts) != n or len(metadata) != n:
            raise DataError(f"got {n} images, {len(prompts)} prompts and {len(metadata)} metadata dicts")
        resolved = [self._metadata(md, k) for k, md in enumerate(metadata)]
        if n == 0:
            return RewardOutput(np.zeros(0, np.float32), {"correct": [], "reason": [], "detections": []})
        raw = self.detector(images)
        found = parse_detections(raw, [img.shape[:2] for img in batch], self.source)
        scores = np.empty(n, dtype=np.float32)
        correct, reasons, kept_info = [], [], []
        for k in range(n):
            ev, kept = self.judge(batch[k], found[k], resolved[k])
            scores[k] = ev.score
            correct.append(ev.correct)
            reasons.append(ev.reason)
            kept_info.append(kept)
        return RewardOutput(scores=scores, info={"correct": correct, "reason": reasons, "detections": kept_info})
