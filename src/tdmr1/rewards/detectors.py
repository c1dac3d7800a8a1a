"""Object detectors for the GenEval reward on real images: the detector protocol, its parser, and loaders for a
callable, ``module:attr`` / ``file.py:attr`` or an HTTP detector server (the protocol: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import base64
import inspect
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from tdmr1.errors import ConfigError, RewardError
from tdmr1.rewards.http_json import JsonPoster
from tdmr1.rewards.protocol import encode_image

DETECT_PATH = "/v1/detect"
#: Environment variable holding the detector server's access token (when not given).
DETECTOR_TOKEN_ENV = "TDMR1_DETECTOR_TOKEN"

Detector = Callable[[np.ndarray], Sequence[Sequence[Mapping[str, Any]]]]


@dataclass(frozen=True)
class Found:
    """One object as the detector reported it (validated): box as floats, mask as bool [H, W] or None."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    color: str | None = None

    @property
    def area(self) -> float:
        """Mask pixels when there is a mask, else the box area."""
        if self.mask is not None:
            return float(self.mask.sum())
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no mask)."""
        out: dict[str, Any] = {
            "label": self.label,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }
        if self.color is not None:
            out["color"] = self.color
        return out


def _decode_mask(value: Any, where: str) -> np.ndarray:
    if isinstance(value, str):
        try:
            with Image.open(io.BytesIO(base64.b64decode(value, validate=True))) as img:
                return np.asarray(img.convert("L")) > 0
        except Exception as exc:  # noqa: BLE001 - the detector's data
            raise RewardError(f"{where}: mask is not a base64 PNG ({type(exc).__name__})") from None
    return np.asarray(value) != 0


def parse_found(raw: Any, where: str, size: tuple[int, int]) -> Found:
    """Validate one detector object (``where`` names it in errors; ``size`` = the image's (H, W))."""
    if not isinstance(raw, Mapping):
        raise RewardError(f"{where}: expected an object with label, score and box, got {type(raw).__name__}")
    label, score, box = raw.get("label"), raw.get("score"), raw.get("box")
    if not isinstance(label, str) or not label:
        raise RewardError(f"{where}: 'label' must be a class name, got {label!r}")
    if isinstance(score, bool) or not isinstance(score, int | float | np.number) or not math.isfinite(score):
        raise RewardError(f"{where}: 'score' must be a finite number, got {score!r}")
    try:
        coords = tuple(float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        coords = ()
    if (
        len(coords) != 4
        or not all(math.isfinite(v) for v in coords)
        or coords[2] <= coords[0]
        or coords[3] <= coords[1]
    ):
        raise RewardError(f"{where}: 'box' must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {box!r}")
    mask = None
    if raw.get("mask") is not None:
        mask = _decode_mask(raw["mask"], where)
        if mask.shape != size:
            raise RewardError(f"{where}: mask of shape {mask.shape} for a {size[0]}x{size[1]} image")
    color = raw.get("color")
    if color is not None and not isinstance(color, str):
        raise RewardError(f"{where}: 'color' must be a colour name, got {color!r}")
    return Found(label, float(score), coords, mask, color)  # type: ignore[arg-type]


def parse_detections(raw: Any, sizes: Sequence[tuple[int, int]], source: str) -> list[list[Found]]:
    """Validate a detector's answer for images of these (H, W) sizes; RewardError naming the first problem."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or len(raw) != len(sizes):
        got = len(raw) if isinstance(raw, Sequence) and not isinstance(raw, str | bytes) else type(raw).__name__
        raise RewardError(f"detector {source} returned {got} results for {len(sizes)} images")
    out = []
    for i, (objs, size) in enumerate(zip(raw, sizes, strict=True)):
        if not isinstance(objs, Sequence) or isinstance(objs, str | bytes):
            raise RewardError(f"detector {source}: image {i}: expected a list of objects, got {type(objs).__name__}")
        out.append([parse_found(o, f"detector {source}: image {i}, object {j}", size) for j, o in enumerate(objs)])
    return out


class RemoteDetector:
    """Client of a detector server speaking ``POST /v1/detect`` (module doc)."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        batch_size: int = 16,
        token: str | None = None,
    ) -> None:
        import os

        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"detector url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self.batch_size = max(1, int(batch_size))
        self.token = token if token is not None else os.environ.get(DETECTOR_TOKEN_ENV)
        self._http = JsonPoster(self.url, "detector server", self.timeout_s, self.retries, self.backoff_s, self.token)

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (a cache hit sends none)."""
        return self._http.requests

    def _post(self, payload: dict[str, Any]) -> Any:
        return self._http.post(DETECT_PATH, payload)

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = []
        for start in range(0, len(images), self.batch_size):
            part = images[start : start + self.batch_size]
            answer = self._post({"images": [encode_image(img) for img in part]})
            found = answer.get("detections") if isinstance(answer, dict) else None
            if not isinstance(found, list) or len(found) != len(part):
                got = len(found) if isinstance(found, list) else type(found).__name__
                raise RewardError(f"detector server {self.url} returned {got} results for {len(part)} images")
            out.extend(found)
        return out


def load_detector(spec: str | Detector, **options: Any) -> Detector:
    """A detector from a callable, ``module:attr``, ``file.py:attr`` or ``http(s)://host:port`` (module doc).

    ``options`` go to ``RemoteDetector`` (timeout_s, retries, backoff_s, batch_size, token) and are refused
    for the other kinds.
    """
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        return RemoteDetector(spec, **options)
    if options:
        raise ConfigError(f"detector options {sorted(options)} apply to http:// detectors only")
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"detector must be a callable, module:attr, file.py:attr or http://host:port, got {spec!r}")
    from tdmr1.rewards.registry import import_callable

    obj = import_callable(spec, "detector")
    return obj() if inspect.isclass(obj) else obj
