"""The second OCR engine (Tesseract): the install line when the binary is missing, the same contract as the
OCR reward on clean compact renders, and benchmarks/second_ocr.py pairing two evaluation folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_module import load_benchmark
from tdmr1.errors import RewardError
from tdmr1.worlds import get_world
from tdmr1.worlds.glyphs import tesseract
from tdmr1.worlds.glyphs.tesseract import TesseractReward

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract binary not installed")


def test_missing_binary_names_the_install_line(monkeypatch) -> None:
    monkeypatch.setattr(tesseract.shutil, "which", lambda name: None)
    with pytest.raises(RewardError, match="apt-get install tesseract-ocr"):
        TesseractReward()


@needs_tesseract
def test_tesseract_reads_clean_renders_and_misses_a_blank() -> None:
    world = get_world("glyphs-compact")
    suite = world.subsample_suite(world.benchmark_suite(), 2)
    images = np.stack([world.render_oracle(md, None) for md in suite])
    images[0] = 255  # a blank sign reads as nothing: score 0
    out = TesseractReward()(images, [md["prompt"] for md in suite], suite)
    assert out.scores[0] == 0.0 and not out.info["correct"][0]
    assert out.scores[1:].mean() >= 0.9 and out.info["pred"][1] == suite[1]["text"]


def _folder(root: Path, world, suite, images) -> Path:
    for i, (md, img) in enumerate(zip(suite, images, strict=True)):
        d = root / f"{i:05d}"
        (d / "samples").mkdir(parents=True)
        (d / "metadata.jsonl").write_text(json.dumps(md) + "\n")
        Image.fromarray(img).save(d / "samples" / "0000.png")
    return root


@needs_tesseract
def test_second_ocr_pairs_two_folders(tmp_path: Path) -> None:
    world = get_world("glyphs-compact")
    suite = world.subsample_suite(world.benchmark_suite(), 2)
    clean = np.stack([world.render_oracle(md, None) for md in suite])
    before = clean.copy()
    before[:3] = 255  # three blank signs before, all readable after
    a = _folder(tmp_path / "a", world, suite, before)
    b = _folder(tmp_path / "b", world, suite, clean)
    out = tmp_path / "second.json"
    res = load_benchmark("second_ocr").main(["--folder", f"before={a}", "--folder", f"after={b}", "--out", str(out)])
    assert json.loads(out.read_text()) == res
    for engine in ("rapidocr", "tesseract"):
        paired = res["paired"]["before->after"][engine]
        assert paired["pairs"] == 6 and paired["gained"] == 3 and paired["lost"] == 0
        assert res["folders"]["after"][engine]["ocr_accuracy"] > res["folders"]["before"][engine]["ocr_accuracy"]
        assert res["clean_renders"][engine]["ocr_accuracy"] >= 0.95
