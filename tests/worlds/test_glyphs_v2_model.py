"""GlyphsEval v2 and the embedded model: a tiny v2 teacher trains and samples 32x128 images, evaluation
reports per-length metrics, the wide-canvas backbone options work, and v1 (32x64) models fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tdmr1.config import load_config
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.models.embedded import BackboneConfig, EmbeddedT2I, checkpoint_image_size
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.pipelines.generate import generate_images
from tdmr1.teacher.pretrain import PretrainConfig, build_model, pretrain
from tdmr1.worlds import get_world

GLYPHS_TINY = ["world=glyphs", "backbone.channels=1", "backbone.max_tokens=20"]


def test_tiny_v2_teacher_trains_and_samples_the_v2_shape(tiny_backbone_overrides, tmp_path: Path) -> None:
    overrides = [
        *GLYPHS_TINY,
        *tiny_backbone_overrides,
        "steps=3",
        "batch_size=4",
        "checkpoint_every=3",
        "snapshot_every=0",
        "sample_every=0",
        "sampling.steps=2",
        "threads=1",
    ]
    cfg = load_config(PretrainConfig, Path("configs/glyphs/pretrain.yaml"), overrides)
    model_dir = pretrain(cfg, tmp_path / "run", quiet=True)
    assert checkpoint_image_size(model_dir) == (32, 128)
    model = EmbeddedT2I.load(model_dir).eval()
    assert model.image_shape == (1, 32, 128) and model.meta["trained_steps"] == 3
    assert model.meta["world"] == "glyphs" and "v2" in model.meta["world_spec"]
    images = generate_images(model, ['a sign that says "KQTAXBWM"'] * 2, [0, 1], SamplingConfig(steps=2, cfg=1.0))
    assert images.shape == (2, 32, 128, 3) and images.dtype == np.uint8
    assert (images[..., 0] == images[..., 2]).all()  # one channel written as RGB
    assert (tmp_path / "run" / "samples" / "step_000003.png").is_file()

    pytest.importorskip("rapidocr")
    from tdmr1.eval.evaluate import evaluate

    result = evaluate(model, "glyphs", SamplingConfig(steps=2, cfg=1.0), tmp_path / "eval", 1, 1, quiet=True)
    assert list(result["tags"]) == [f"{n}_letters" for n in range(4, 9)]  # per-length rows
    assert all(t["images"] == 1 for t in result["tags"].values()) and result["scored"] == 5
    assert 0.0 <= result["ocr_accuracy"] <= 1.0 and "exact_match" in result and "gray_fraction" in result
    assert result["world_spec"] == get_world("glyphs").spec
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["tags"] == result["tags"]


@pytest.mark.parametrize(
    "extra",
    [
        ["backbone.coord_channels=true"],
        ["backbone.cross_attention_levels=[false, true, true]", "backbone.cross_only_levels=[false, true, false]"],
        ["backbone.block_out_channels=[16, 16, 32, 32]", "backbone.cross_attention_levels=[false, false, true, true]"],
    ],
)
def test_wide_canvas_backbone_options(tiny_backbone_overrides, extra: list[str], tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(load_config(PretrainConfig, None, [*GLYPHS_TINY, *tiny_backbone_overrides, *extra]))
    x = torch.randn(2, *model.image_shape)
    text = model.encode_prompts(['a sign that says "ABCD"', ""])
    with torch.no_grad():
        v = model(x, torch.tensor([0.3, 0.9]), text)
    assert v.shape == (2, 1, 32, 128)
    model.save(tmp_path / "m", dtype=None)
    again = EmbeddedT2I.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.allclose(
            again(x, torch.tensor([0.3, 0.9]), again.encode_prompts(['a sign that says "ABCD"', ""])), v
        )


def test_backbone_size_comes_from_the_world(tiny_backbone_overrides) -> None:
    assert build_model(load_config(PretrainConfig, None, ["world=shapes", *tiny_backbone_overrides])).image_shape[
        1:
    ] == (32, 32)
    with pytest.raises(ConfigError, match="differs from world 'glyphs'"):
        build_model(
            load_config(PretrainConfig, None, [*GLYPHS_TINY, "backbone.image_width=64", *tiny_backbone_overrides])
        )
    with pytest.raises(ConfigError, match="17 tokens but backbone.max_tokens is 16"):
        build_model(load_config(PretrainConfig, None, ["world=glyphs-hard", *tiny_backbone_overrides]))
    with pytest.raises(ConfigError, match="cross_only_levels"):
        load_config(PretrainConfig, None, ["backbone.cross_only_levels=[true]"])


def _v1_checkpoint(path: Path) -> Path:
    """A GlyphsEval v1-shaped (32x64) model folder, like the checkpoints shipped before spec v2."""
    world = get_world("glyphs")
    cfg = BackboneConfig(
        image_height=32,
        image_width=64,
        channels=1,
        block_out_channels=(16, 16, 32),
        norm_num_groups=8,
        attention_heads=2,
        text_hidden=16,
        text_layers=1,
        text_heads=2,
    )
    model = EmbeddedT2I(cfg, WordTokenizer(world.vocabulary(), 16, "char"), {"world": "glyphs"})
    model.save(path)
    return path


def test_v1_checkpoint_fails_eval_and_demo_with_one_clear_line(tmp_path: Path) -> None:
    v1 = _v1_checkpoint(tmp_path / "checkpoints" / "glyphs" / "tdm4")
    env = {**os.environ, "TDMR1_TEST_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "tdmr1",
        "eval",
        "--world",
        "glyphs",
        "--checkpoint",
        str(v1),
        "--out",
        str(tmp_path / "e"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "image shape mismatch" in lines[0] and "32x64" in lines[0] and "32x128" in lines[0]
    assert "tdmr1 pretrain --world glyphs --config configs/glyphs/pretrain.yaml" in lines[0]
    assert not (tmp_path / "e" / "images").exists()  # stopped before sampling

    from tdmr1.demo import run_demo

    with pytest.raises(CheckpointError, match=r"image shape mismatch: the student .*tdm4 makes 32x64") as err:
        run_demo("glyphs", iterations=1, out=tmp_path / "demo", checkpoints=tmp_path / "checkpoints", quiet=True)
    assert "tdmr1 pretrain --world glyphs" in str(err.value) and "\n" not in str(err.value)


def test_shipped_glyphs_folder_has_no_v1_models() -> None:
    root = Path(__file__).resolve().parents[2] / "checkpoints" / "glyphs"
    assert (root / "README.md").is_file()
    for name in ("teacher", "tdm4", "r1"):
        if (root / name / "config.json").is_file():  # once v2 models are shipped they must be 32x128
            assert checkpoint_image_size(root / name) == (32, 128)
