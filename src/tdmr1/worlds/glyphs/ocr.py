"""The OCR reward: rapidocr's PP-OCR text recogniser (ONNX, offline, recognition only) reads each whole image;
rapidocr and onnxruntime (``tdmr1[ocr]``) are imported when the first reward is built (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import DataError, RewardError
from tdmr1.reward_protocol import RewardOutput, validate_images
from tdmr1.worlds.glyphs.metric import exact, normalize_prediction, text_accuracy
from tdmr1.worlds.glyphs.prompts import target_text

INSTALL_HINT = 'the OCR reward needs rapidocr and onnxruntime: pip install "tdmr1[ocr]"'
#: The recognition model bundled with rapidocr (file name under ``rapidocr/models/``).
REC_MODEL = "PP-OCRv6_rec_small.onnx"
#: Images per ONNX forward pass (rapidocr's default; on one CPU thread small batches are the fastest).
DEFAULT_BATCH = 6

_ENGINES: dict[tuple[int | None, int], Any] = {}


def _import_rapidocr() -> Any:
    try:
        import onnxruntime  # noqa: F401
        import rapidocr
    except ImportError as exc:
        raise RewardError(f"{INSTALL_HINT} ({exc})") from None
    return rapidocr


def bundled_model_path() -> Path:
    """Path of the recognition model inside the installed rapidocr package."""
    return Path(_import_rapidocr().__file__).parent / "models" / REC_MODEL


def get_engine(threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> Any:
    """The process's ``rapidocr.RapidOCR`` engine for these settings (built on first use, then cached).

    ``threads``: onnxruntime intra-op threads (None: onnxruntime's default, every core).
    """
    key = (threads, batch_size)
    if key not in _ENGINES:
        rapidocr = _import_rapidocr()
        model = bundled_model_path()
        if not model.is_file():
            raise RewardError(f"rapidocr's bundled model {model} is missing; reinstall rapidocr ({INSTALL_HINT})")
        params: dict[str, Any] = {
            "Global.use_det": False,
            "Global.use_cls": False,
            "Global.use_rec": True,
            "Global.log_level": "error",
            "Rec.model_path": str(model),
            "Rec.rec_batch_num": batch_size,
        }
        if threads is not None:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        _ENGINES[key] = rapidocr.RapidOCR(params=params)
    return _ENGINES[key]


def reset_engine_cache() -> None:
    """Forget the cached engines (tests; the next call builds a new one)."""
    _ENGINES.clear()


def read_texts(images: np.ndarray, threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> list[str]:
    """Raw OCR text of each uint8 RGB image [N, H, W, 3] (recognition only, whole image)."""
    validate_images(images)
    if len(images) == 0:
        return []
    engine = get_engine(threads, batch_size)
    bgr = [np.ascontiguousarray(img[:, :, ::-1]) for img in images]  # rapidocr takes OpenCV's BGR order
    try:
        # the recognition step of engine(img, use_det=False, use_cls=False, use_rec=True), batched
        out = engine.recognize_txt(bgr)
    except Exception as exc:  # onnxruntime / rapidocr failures become one clear reward error
        raise RewardError(f"OCR failed: {type(exc).__name__}: {exc}") from exc
    return [str(t) for t in out.txts]


class OcrReward:
    """GlyphsEval's reward: OCR accuracy of each image against its prompt's quoted text.

    ``scores``: ``text_accuracy`` (spec formula) in [0, 1]. ``info``: ``correct`` (exact match),
    ``reason`` (what was read), ``pred`` (normalised OCR text).
    """

    name = "ocr"

    def __init__(self, threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> None:
        self.threads = threads
        self.batch_size = batch_size
        get_engine(threads, batch_size)  # fail early (missing package) and pay the load once

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[Mapping[str, Any]]) -> RewardOutput:
        validate_images(images)
        check_lengths(images, prompts, metadata)
        return score_texts(read_texts(images, self.threads, self.batch_size), prompts, metadata, "read")


def check_lengths(images: np.ndarray, prompts: list[str], metadata: list[Mapping[str, Any]]) -> None:
    """DataError unless there is one prompt and one metadata dict per image."""
    if len(prompts) != len(images) or len(metadata) != len(images):
        raise DataError(f"got {len(images)} images, {len(prompts)} prompts and {len(metadata)} metadata dicts")


def score_texts(texts: list[str], prompts: list[str], metadata: list[Mapping[str, Any]], verb: str) -> RewardOutput:
    """An OCR engine's raw texts scored against the prompts' quoted text: ``scores`` the spec's OCR accuracy,
    ``info`` ``correct`` (exact match), ``reason`` (``"<verb> 'PRED' for 'TARGET'"``), ``pred`` (normalised)."""
    targets = [target_text(p, md) for p, md in zip(prompts, metadata, strict=True)]
    pairs = [(normalize_prediction(t), target) for t, target in zip(texts, targets, strict=True)]
    return RewardOutput(
        scores=np.array([text_accuracy(p, t) for p, t in pairs], dtype=np.float32),
        info={
            "correct": [exact(p, t) for p, t in pairs],
            "reason": [f"{verb} {p!r} for {t!r}" for p, t in pairs],
            "pred": [p for p, _ in pairs],
        },
    )
