"""The ``ocr-det`` reward (rapidocr detection + recognition, bundled models) on large rendered images:
the right word scores 1, a wrong one low, an image without text 0; targets, mixed sizes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tdmr1.errors import ConfigError, DataError
from tdmr1.rewards import ocr_det
from tdmr1.rewards.ocr_det import OcrDetReward, bundled_models, parse_quoted, target_of
from tdmr1.rewards.registry import make_reward
from tdmr1.worlds import get_world
from tdmr1.worlds.glyphs.metric import text_accuracy
from tdmr1.worlds.glyphs.render import load_font


@pytest.fixture(scope="module")
def reward() -> OcrDetReward:
    pytest.importorskip("rapidocr")
    pytest.importorskip("onnxruntime")
    return OcrDetReward(threads=1)


def noisy_background(size: int, seed: int) -> np.ndarray:
    """A coloured horizontal gradient with Gaussian noise (no text), uint8 [size, size, 3]."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, size)[None, :, None] * np.array([1.0, 0.6, 0.3])
    return (ramp + rng.normal(0, 25, (size, size, 3))).clip(0, 255).astype(np.uint8)


def sign(word: str, size: int = 512, xy: tuple[int, int] = (110, 330), seed: int = 0) -> np.ndarray:
    """``word`` drawn by PIL (DejaVu Sans Bold 48 px, white with a black outline) off-centre on the background."""
    img = Image.fromarray(noisy_background(size, seed))
    ImageDraw.Draw(img).text(xy, word, font=load_font(48), fill=(255, 255, 255), stroke_width=2, stroke_fill=0)
    return np.asarray(img)


def test_bundled_det_and_rec_models_ship_in_the_wheel() -> None:
    pytest.importorskip("rapidocr")
    models = bundled_models()
    assert models["det"].is_file() and models["rec"].is_file() and models["cls"].is_file()


def test_large_image_right_word_scores_one_wrong_word_low_no_text_zero(reward: OcrDetReward) -> None:
    text = sign("Hello World")
    # a list of images of different sizes is read image by image
    images = [text, text, noisy_background(128, 1)]
    prompts = ['a sign that says "hello world"', 'a sign that says "GOODBYE"', 'a sign that says "hello world"']
    out = reward(images, prompts, [{}] * 3)
    print("ocr-det:", out.scores.tolist(), out.info["pred"])
    assert out.scores.dtype == np.float32 and out.scores.shape == (3,)
    assert out.info["pred"][0] == "HELLOWORLD" and out.info["text"][0] == "Hello World"
    assert out.scores[0] == 1.0 and out.info["correct"][0]
    assert out.scores[1] == pytest.approx(text_accuracy("HELLOWORLD", "GOODBYE")) and out.scores[1] < 0.5
    assert not out.info["correct"][1]
    assert out.info["pred"][2] == "" and out.scores[2] == 0.0
    assert out.info["reason"][1] == "read 'HELLOWORLD' for 'GOODBYE'"


def test_targets_from_quotes_or_metadata() -> None:
    assert parse_quoted('a sign that says "Open 24/7" in neon') == "Open 24/7"
    assert parse_quoted("a mug with \u201cI love tea\u201d on it") == "I love tea"
    assert parse_quoted("no quotes here") is None
    assert target_of('a sign that says "Open 24/7"', {}) == "OPEN24/7"
    assert target_of("a sign", {"text": "stop"}) == "STOP"
    with pytest.raises(DataError, match="no text in double quotes"):
        target_of("a sign that says OPEN", {})
    with pytest.raises(DataError, match="empty target"):
        target_of('a sign that says "  "', {})


def test_bad_batches_are_one_line_data_errors(reward: OcrDetReward) -> None:
    ok = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(DataError, match="prompt 'no quotes' has no text in double quotes"):
        reward(ok, ["no quotes"], [{}])
    with pytest.raises(DataError, match="got 1 images, 2 prompts"):
        reward(ok, ['"A"', '"B"'], [{}, {}])
    with pytest.raises(DataError, match="image 1 must be a uint8 RGB array"):
        reward([ok[0], np.zeros((64, 64), np.uint8)], ['"A"', '"B"'], [{}, {}])
    with pytest.raises(DataError, match="must be uint8"):
        reward(ok.astype(np.float32), ['"A"'], [{}])


def test_registry_builds_ocr_det_with_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_det, "get_engine", lambda *args: None)  # wiring only: no engine is loaded
    world = get_world("shapes")
    built = make_reward({"ocr-det": {"threads": 1, "use_cls": True}}, world)
    assert isinstance(built, OcrDetReward) and built.use_cls and built.threads == 1
    assert isinstance(make_reward("ocr-det", world), OcrDetReward)
    with pytest.raises(ConfigError, match="unknown option 'lang'"):
        make_reward({"ocr-det": {"lang": "en"}}, world)
    with pytest.raises(ConfigError, match="limit_side must be an integer >= 32"):
        make_reward({"ocr-det": {"limit_side": 8}}, world)
