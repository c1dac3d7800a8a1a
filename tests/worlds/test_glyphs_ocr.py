"""The OCR reward (rapidocr, offline) on clean spec-v2 renders (every level), blank images and bad input;
the install hint; the CLI render -> score round trip on GlyphsEval's benchmark with per-length rows."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tdmr1.cli.world import score_command, world_app
from tdmr1.errors import DataError, RewardError
from tdmr1.eval.scoring import score_folder
from tdmr1.rewards.registry import make_reward
from tdmr1.worlds import get_world
from tdmr1.worlds.glyphs import OcrReward, benchmark_suite, render_texts
from tdmr1.worlds.glyphs import ocr as ocr_module


@pytest.fixture(scope="module")
def reward() -> OcrReward:
    pytest.importorskip("rapidocr")
    pytest.importorskip("onnxruntime")
    return OcrReward(threads=1)


@pytest.mark.parametrize("level", ["standard", "hard", "compact"])
def test_clean_benchmark_renders_read_correctly(reward: OcrReward, level: str) -> None:
    """Spec v2: oracle renders of the benchmark score >= 0.99 OCR accuracy (benchmarks/glyphs_v2_oracle.py)."""
    world = get_world({"standard": "glyphs", "hard": "glyphs-hard", "compact": "glyphs-compact"}[level])
    suite = world.benchmark_suite()
    images = np.stack([world.render_oracle(md, None) for md in suite])
    assert images.shape[1:3] == world.image_size
    out = reward(images, [md["prompt"] for md in suite], suite)
    assert out.scores.dtype == np.float32 and out.scores.shape == (40 * len(world.tags),)
    ocr_accuracy, exact = float(out.scores.mean()), float(np.mean(out.info["correct"]))
    print(f"clean GlyphsEval v2 {level} renders: OCR accuracy {ocr_accuracy:.4f}, exact match {exact:.4f}")
    assert ocr_accuracy >= 0.99 and exact >= 0.97
    for n in world_lengths(suite):
        sel = [i for i, md in enumerate(suite) if len(md["text"]) == n]
        assert len(sel) == 40 and float(out.scores[sel].mean()) >= 0.97, n
    assert out.info["reason"][0] == f"read {out.info['pred'][0]!r} for {suite[0]['text']!r}"
    assert len(out.info["pred"]) == len(suite)


def world_lengths(suite: list[dict]) -> list[int]:
    return sorted({len(md["text"]) for md in suite})


def test_blank_and_noise_images_score_low(reward: OcrReward) -> None:
    blank = np.full((2, 32, 128, 3), 255, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, size=(2, 32, 128, 3), dtype=np.uint8)
    prompts = ['a sign that says "KQTA"'] * 4
    out = reward(np.concatenate([blank, noise]), prompts, [{}] * 4)  # target taken from the prompt
    assert out.scores[:2].tolist() == [0.0, 0.0] and out.scores.max() < 0.5 and not any(out.info["correct"])


def test_target_from_metadata_wrong_text_and_bad_input(reward: OcrReward) -> None:
    img = render_texts(["KQTA", "KQTA"])
    out = reward(img, ["no quotes here", 'a sign that says "KQTB"'], [{"text": "kqta"}, {}])
    assert out.scores[0] == 1.0 and out.info["correct"][0]
    assert out.scores[1] == pytest.approx(0.75) and not out.info["correct"][1]
    with pytest.raises(DataError, match="uint8"):
        reward(img.astype(np.float32), ["x", "y"], [{}, {}])
    with pytest.raises(DataError, match="2 images, 1 prompts"):
        reward(img, ['"A"'], [{}])
    with pytest.raises(DataError, match="no text in double quotes"):
        reward(img[:1], ["no quotes"], [{}])
    assert reward(img[:0], [], []).scores.shape == (0,)


def test_engine_is_cached_offline_and_matches_the_full_pipeline(
    reward: OcrReward, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the OCR engine tried to use the network")

    ocr_module.reset_engine_cache()
    monkeypatch.setattr(socket.socket, "connect", no_network)
    engine = ocr_module.get_engine(1, ocr_module.DEFAULT_BATCH)
    assert engine is ocr_module.get_engine(1, ocr_module.DEFAULT_BATCH)
    assert Path(engine.cfg.Rec.model_path).name == "PP-OCRv6_rec_small.onnx"
    images = render_texts(["KQTA", "WOLFXBRM", "ZXQJV"])
    batched = ocr_module.read_texts(images, threads=1)
    assert batched == ["KQTA", "WOLFXBRM", "ZXQJV"]
    bgr = [np.ascontiguousarray(img[:, :, ::-1]) for img in images]
    single = [engine(img, use_det=False, use_cls=False, use_rec=True) for img in bgr]
    assert [s.txts[0] for s in single] == batched


def test_reward_registry_builds_ocr(reward: OcrReward) -> None:
    built = make_reward("ocr", get_world("glyphs"))
    assert built.name == "ocr" and get_world("glyphs").make_reward().name == "ocr"


@pytest.mark.parametrize("missing", ["rapidocr", "onnxruntime"])
def test_missing_package_gives_install_hint(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ocr_module.reset_engine_cache()
    monkeypatch.setitem(sys.modules, missing, None)  # "import rapidocr" now raises ImportError
    hint = re.escape('the OCR reward needs rapidocr and onnxruntime: pip install "tdmr1[ocr]"')
    with pytest.raises(RewardError, match=hint):
        OcrReward()
    with pytest.raises(RewardError, match=hint):
        make_reward(None, get_world("glyphs"))
    ocr_module.reset_engine_cache()


def test_importing_the_world_does_not_import_rapidocr() -> None:
    code = (
        "import sys; from tdmr1.worlds import get_world; w = get_world('glyphs'); w.benchmark_suite(); "
        "import tdmr1.eval.scoring; assert 'rapidocr' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(world_app, name="world")
    app.command("score")(score_command)
    return app


def test_cli_prompts_render_score_on_the_benchmark(reward: OcrReward, tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    bench = tmp_path / "bench.jsonl"
    res = runner.invoke(app, ["world", "prompts", "--world", "glyphs", "--split", "bench", "--out", str(bench)])
    assert res.exit_code == 0, res.output
    assert [json.loads(line) for line in bench.read_text().splitlines()] == benchmark_suite()
    train = tmp_path / "train.jsonl"
    args = ["world", "prompts", "--world", "glyphs", "--split", "train", "--n", "7", "--out", str(train)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and len(train.read_text().splitlines()) == 7

    out = tmp_path / "imgs"
    args = ["world", "render", "--world", "glyphs", "--prompts", str(bench), "--out", str(out)]
    res = runner.invoke(app, [*args, "--images-per-prompt", "1"])
    assert res.exit_code == 0, res.output
    report_path = tmp_path / "report.json"
    res = runner.invoke(app, ["score", str(out), "--world", "glyphs", "--json", str(report_path)])
    assert res.exit_code == 0, res.output
    assert "OCR accuracy" in res.output and "exact match" in res.output
    assert all(f"{n}_letters" in res.output for n in range(4, 9))  # the per-length table
    full = json.loads(report_path.read_text())
    assert full["ocr_accuracy"] >= 0.99 and len(full["images"]) == 200 and not full["problems"]
    assert list(full["tags"]) == [f"{n}_letters" for n in range(4, 9)]
    assert all(t["images"] == 40 and t["mean_score"] >= 0.97 for t in full["tags"].values())

    summary = score_folder("glyphs", out).summary()
    assert summary["ocr_accuracy"] == pytest.approx(full["ocr_accuracy"]) and summary["scored"] == 200
    rates = [t["accuracy"] for t in summary["tags"].values()]
    assert summary["exact_match"] == summary["overall"] == pytest.approx(np.mean(rates))
