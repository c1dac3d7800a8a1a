"""OCR reward for real images (``ocr-det``), as the authors' OCR reward: rapidocr text detection and recognition
on the whole image, scored against the prompt's quoted text with the glyphs metric (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import ConfigError, DataError, RewardError
from tdmr1.reward_protocol import RewardOutput
from tdmr1.rewards.images import as_image_list
from tdmr1.worlds.glyphs.metric import exact, normalize_prediction, text_accuracy

INSTALL_HINT = 'the ocr-det reward needs rapidocr and onnxruntime: pip install "tdmr1[ocr]"'
#: Models bundled with rapidocr (file names under ``rapidocr/models/``).
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
#: Detector input size rule (PaddleOCR's defaults ``det_limit_side_len=960``, ``det_limit_type="max"``).
DET_LIMIT_SIDE = 960
#: Recognised lines below this confidence are dropped (rapidocr's ``text_score``, PaddleOCR's ``drop_score``).
TEXT_SCORE = 0.5
_QUOTES = (('"', '"'), ("\u201c", "\u201d"))

_ENGINES: dict[tuple[Any, ...], Any] = {}


def bundled_models() -> dict[str, Path]:
    """Paths of the detection, recognition and angle-classifier models inside the installed rapidocr."""
    try:
        import onnxruntime  # noqa: F401
        import rapidocr
    except ImportError as exc:
        raise RewardError(f"{INSTALL_HINT} ({exc})") from None
    root = Path(rapidocr.__file__).parent / "models"
    return {"det": root / DET_MODEL, "rec": root / REC_MODEL, "cls": root / CLS_MODEL}


def get_engine(threads: int | None = None, use_cls: bool = False, limit_side: int = DET_LIMIT_SIDE) -> Any:
    """The process's ``rapidocr.RapidOCR`` with detection for these settings (built once, then cached)."""
    key = (threads, use_cls, limit_side)
    if key not in _ENGINES:
        models = bundled_models()
        for part, path in models.items():
            if (part != "cls" or use_cls) and not path.is_file():
                raise RewardError(f"rapidocr's bundled model {path} is missing; reinstall rapidocr ({INSTALL_HINT})")
        import rapidocr

        params: dict[str, Any] = {
            "Global.use_det": True,
            "Global.use_cls": use_cls,
            "Global.use_rec": True,
            "Global.text_score": TEXT_SCORE,
            "Global.log_level": "error",
            "Det.model_path": str(models["det"]),
            "Det.limit_side_len": limit_side,
            "Det.limit_type": "max",
            "Rec.model_path": str(models["rec"]),
        }
        if use_cls:
            params["Cls.model_path"] = str(models["cls"])
        if threads is not None:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        _ENGINES[key] = rapidocr.RapidOCR(params=params)
    return _ENGINES[key]


def parse_quoted(prompt: str) -> str | None:
    """The text between the first pair of straight or typographic double quotes of ``prompt`` (None if none)."""
    best: tuple[int, str] | None = None
    for left, right in _QUOTES:
        start = prompt.find(left)
        end = prompt.find(right, start + 1) if start >= 0 else -1
        if end > start and (best is None or start < best[0]):
            best = (start, prompt[start + 1 : end])
    return None if best is None else best[1]


def target_of(prompt: str, metadata: Mapping[str, Any] | None) -> str:
    """Normalised target text of one image: ``metadata["text"]``, else the prompt's quotes; DataError if none."""
    if metadata is not None and "text" in metadata:
        raw = metadata["text"]
        if not isinstance(raw, str):
            raise DataError(f"metadata 'text' must be a string, got {raw!r}")
    else:
        if not isinstance(prompt, str):
            raise DataError(f"prompt must be a string, got {prompt!r}")
        raw = parse_quoted(prompt)
        if raw is None:
            raise DataError(f'prompt {prompt!r} has no text in double quotes (e.g. a sign that says "OPEN")')
    target = normalize_prediction(raw)
    if not target:
        raise DataError(f"empty target text for prompt {prompt!r}")
    return target


def read_lines(image: np.ndarray, engine: Any) -> list[str]:
    """Text lines that rapidocr detects and reads in one uint8 RGB image, in reading order."""
    try:
        out = engine(np.ascontiguousarray(image[:, :, ::-1]))  # rapidocr takes OpenCV's BGR order
    except Exception as exc:  # onnxruntime / rapidocr failures become one clear reward error
        raise RewardError(
            f"OCR failed on a {image.shape[0]}x{image.shape[1]} image: {type(exc).__name__}: {exc}"
        ) from exc
    return [str(t) for t in (out.txts or ())]


class OcrDetReward:
    """OCR with text detection on real images: ``1 - normalised edit distance`` to the quoted text.

    Args:
        threads: onnxruntime intra-op threads (None: onnxruntime's default, every core).
        use_cls: run the 0/180-degree angle classifier on each detected line (off, as the authors).
        limit_side: longest side the detector sees (larger images are shrunk; PaddleOCR's 960).
    """

    name = "ocr-det"

    def __init__(self, threads: int | None = None, use_cls: bool = False, limit_side: int = DET_LIMIT_SIDE) -> None:
        if isinstance(limit_side, bool) or not isinstance(limit_side, int) or limit_side < 32:
            raise ConfigError(f"ocr-det: limit_side must be an integer >= 32, got {limit_side!r}")
        self.threads, self.use_cls, self.limit_side = threads, bool(use_cls), limit_side
        get_engine(threads, self.use_cls, limit_side)  # fail early (missing package) and pay the load once

    def __call__(
        self, images: np.ndarray | Sequence[np.ndarray], prompts: list[str], metadata: list[Mapping[str, Any]]
    ) -> RewardOutput:
        batch = as_image_list(images)
        if len(prompts) != len(batch) or len(metadata) != len(batch):
            raise DataError(f"got {len(batch)} images, {len(prompts)} prompts and {len(metadata)} metadata dicts")
        targets = []
        for k, (p, md) in enumerate(zip(prompts, metadata, strict=True)):
            try:
                targets.append(target_of(p, md))
            except DataError as exc:
                raise DataError(f"item {k}: {exc}") from None
        engine = get_engine(self.threads, self.use_cls, self.limit_side)
        texts = [" ".join(read_lines(img, engine)) for img in batch]
        preds = [normalize_prediction(t) for t in texts]
        pairs = list(zip(preds, targets, strict=True))
        return RewardOutput(
            scores=np.array([text_accuracy(p, t) for p, t in pairs], dtype=np.float32),
            info={
                "correct": [exact(p, t) for p, t in pairs],
                "pred": preds,
                "text": texts,
                "reason": [f"read {p!r} for {t!r}" for p, t in pairs],
            },
        )
