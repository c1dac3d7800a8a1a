"""The reward wire protocol (``POST /v1/score``, ``GET /health``: JSON, images as base64 PNG, never pickle) and
image hashing (requests and answers: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import numpy as np
from PIL import Image

from tdmr1.errors import DataError

PROTOCOL_VERSION = 1
SCORE_PATH = "/v1/score"
HEALTH_PATH = "/health"


def image_hash(image: np.ndarray) -> str:
    """sha256 (hex) of one uint8 [H, W, 3] image: its shape and its pixels."""
    arr = np.ascontiguousarray(image, dtype=np.uint8)
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of one uint8 [H, W, 3] image."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def encode_image(image: np.ndarray) -> str:
    """Base64 (ASCII) PNG of one uint8 [H, W, 3] image."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(text: str, index: int = 0) -> tuple[int, int]:
    """(height, width) of a base64 PNG read from its header alone (nothing is decoded); DataError otherwise."""
    if not isinstance(text, str):
        raise DataError(f"image {index}: expected a base64 PNG string, got {type(text).__name__}")
    try:
        head = base64.b64decode(text[:32], validate=True)  # 24 bytes: signature, IHDR length and type, W, H
    except ValueError:
        head = b""
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"image {index}: not a base64 PNG (no PNG header)")
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def decode_image(text: str, index: int = 0, max_pixels: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] from a base64 PNG; DataError naming the image otherwise (also, before any pixel is
    decoded, for an image of more than ``max_pixels`` pixels)."""
    if not isinstance(text, str):
        raise DataError(f"image {index}: expected a base64 PNG string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            if img.format != "PNG":
                raise DataError(f"image {index}: expected PNG, got {img.format}")
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise DataError(f"image {index} is {img.height}x{img.width}: more than {max_pixels} pixels")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's data
        detail = (str(exc).splitlines() or [""])[0]
        raise DataError(f"image {index}: not a base64 PNG ({type(exc).__name__}: {detail})") from None


def jsonable(value: Any) -> Any:
    """Numpy scalars / arrays and tuples -> plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def metadata_key(prompt: str, metadata: dict[str, Any]) -> str:
    """Canonical JSON of what besides the pixels a score depends on."""
    return json.dumps({"prompt": prompt, "metadata": jsonable(metadata)}, sort_keys=True)
