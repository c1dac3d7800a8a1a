"""A second OCR engine for GlyphsEval, one the RL never trains on: Tesseract (Debian's ``tesseract-ocr``) reads
each image upscaled 2x as one line of capital letters, scored by the same spec metric as ``OcrReward``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from string import ascii_uppercase
from typing import Any

import numpy as np
from PIL import Image

from tdmr1.errors import RewardError
from tdmr1.reward_protocol import RewardOutput, validate_images
from tdmr1.worlds.glyphs.ocr import check_lengths, score_texts

INSTALL_HINT = "the Tesseract check needs the tesseract binary: apt-get install tesseract-ocr (Debian/Ubuntu)"
#: Settings measured on the compact benchmark's clean renders (120 words): 2x bicubic, page mode 7 (one text
#: line), the spec's alphabet: OCR accuracy 0.997, exact 0.983 (raw 32 px images: 0.953 / 0.808).
UPSCALE = 2
ARGS = ("--psm", "7", "-c", f"tessedit_char_whitelist={ascii_uppercase}")


def tesseract_binary() -> str:
    """Path of the ``tesseract`` program; RewardError with the install line when it is not on PATH."""
    path = shutil.which("tesseract")
    if path is None:
        raise RewardError(INSTALL_HINT)
    return path


def read_texts_tesseract(images: np.ndarray) -> list[str]:
    """Tesseract's text of each uint8 RGB image [N, H, W, 3], all images in one process (a list file)."""
    validate_images(images)
    if len(images) == 0:
        return []
    with tempfile.TemporaryDirectory(prefix="tdmr1_tess_") as tmp:
        paths = []
        for i, img in enumerate(images):
            gray = Image.fromarray(img).convert("L")
            path = Path(tmp) / f"{i:06d}.png"
            gray.resize((gray.width * UPSCALE, gray.height * UPSCALE), Image.BICUBIC).save(path)
            paths.append(str(path))
        listing = Path(tmp) / "images.txt"
        listing.write_text("\n".join(paths) + "\n")
        run = subprocess.run([tesseract_binary(), str(listing), "stdout", *ARGS], capture_output=True, text=True)
    if run.returncode != 0:
        raise RewardError(f"tesseract failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")
    texts = run.stdout.split("\f")  # one page per image, each ended by a form feed
    if len(texts) < len(images):
        raise RewardError(f"tesseract returned {len(texts)} pages for {len(images)} images")
    return [t.strip() for t in texts[: len(images)]]


class TesseractReward:
    """The OCR reward's contract with Tesseract as the reader: ``scores`` the spec's OCR accuracy,
    ``info`` ``correct`` / ``reason`` / ``pred`` as ``OcrReward``."""

    name = "ocr-tesseract"

    def __init__(self) -> None:
        tesseract_binary()  # fail early, with the install line

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[Mapping[str, Any]]) -> RewardOutput:
        validate_images(images)
        check_lengths(images, prompts, metadata)
        return score_texts(read_texts_tesseract(images), prompts, metadata, "tesseract read")
