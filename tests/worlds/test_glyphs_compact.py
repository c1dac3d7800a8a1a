"""GlyphsEval v2 level ``compact`` (world ``glyphs-compact``, the CPU level of docs/GLYPHS_SPEC.md): the
spec's values, the 32 x 64 canvas everywhere the world states an image size, the words' length and
width rule, the benchmark's counts, the RL stream balanced over word lengths, the level's configs, a tiny
pretrain step on the compact canvas, the OCR reading clean renders, and the demo's missing-model error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdmr1.config import load_config
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError
from tdmr1.models.embedded import EmbeddedT2I, checkpoint_image_size
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.pipelines.generate import generate_images
from tdmr1.r1.config import RLConfig
from tdmr1.r1.prompt_stream import PromptStream
from tdmr1.tdm.distill import DistillConfig
from tdmr1.teacher.pretrain import PretrainConfig, build_model, pretrain
from tdmr1.worlds import get_world, known_worlds
from tdmr1.worlds.glyphs import (
    COMPACT,
    LEVELS,
    STANDARD,
    benchmark_lexicon,
    get_level,
    held_out,
    parse_target,
    render_text,
    render_texts,
    rl_lexicon,
    text_width,
)
from tdmr1.worlds.glyphs.lexicon import draw_words, fits
from tdmr1.worlds.glyphs.world import config_file

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "glyphs"
LENGTHS = (5, 6, 7)
TAGS = ("5_letters", "6_letters", "7_letters")


def _ink_box(img: np.ndarray) -> tuple[int, int, int, int]:
    ink = img[..., 0] < 255
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def test_level_registration_and_spec_values() -> None:
    """The spec's table: 12 px, 5-7 letters, width <= 60 px, canvas 32 x 64, world glyphs-compact."""
    assert get_level("compact") is COMPACT and LEVELS["compact"] is COMPACT and list(LEVELS)[-1] == "compact"
    assert (COMPACT.world_name, COMPACT.font_size, COMPACT.lengths, COMPACT.max_width) == (
        "glyphs-compact",
        12,
        LENGTHS,
        60.0,
    )
    assert COMPACT.image_size == (32, 64) and STANDARD.image_size == (32, 128)
    assert COMPACT.tags == TAGS
    assert COMPACT.describe() == "GlyphsEval v2 compact (12 px, 5-7 letters, 32x64)"
    assert "glyphs-compact" in known_worlds()
    world = get_world("glyphs-compact")
    assert world is get_world("glyphs-compact")
    assert world.image_size == (32, 64) and world.tags == TAGS and world.images_per_prompt == 4
    assert world.spec == COMPACT.describe() and world.tokenizer_mode == "char"
    assert world.vocabulary() == get_world("glyphs").vocabulary()
    assert [m.key for m in world.metrics] == ["ocr_accuracy", "exact_match"]


def test_renders_and_training_batches_are_32x64() -> None:
    world = get_world("glyphs-compact")
    md = world.benchmark_suite()[0]
    img = world.render_oracle(md, np.random.default_rng(0))
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render_text(md["text"], 12, 64, 32))
    assert render_texts(["ABCDE", "FGHIJK"], 12, 64).shape == (2, 32, 64, 3)
    assert render_texts([], 12, 64).shape == (0, 32, 64, 3)
    images, captions = world.training_batch(np.random.default_rng(0), 5)
    assert images.shape == (5, 32, 64, 3) and len(captions) == 5
    assert all(len(parse_target(c)) in LENGTHS and parse_target(c) not in held_out(COMPACT) for c in captions)
    assert set(world.quality(images)) == {"gray_fraction", "ink_fraction"}
    assert world.quality_keys() == ["gray_fraction", "ink_fraction"]


def test_every_benchmark_word_is_centred_and_never_clipped() -> None:
    world = get_world("glyphs-compact")
    for md in world.benchmark_suite():
        top, bottom, left, right = _ink_box(world.render_oracle(md, None))
        assert left >= 1 and right <= 62 and top >= 1 and bottom <= 30, md["text"]
        assert abs(left - (63 - right)) <= 2 and abs(top - (31 - bottom)) <= 2, md["text"]


def test_words_length_and_width_rule() -> None:
    bench, rl = benchmark_lexicon("compact"), rl_lexicon("compact")
    for lex in (bench, rl):
        assert {len(w) for w in lex} == set(LENGTHS)
        assert all(text_width(w, 12) <= 60 for w in lex)
    # the rule binds at 7 letters (wide letters are redrawn) and is the level's, not the 120 px one
    assert not fits("MMMMMMM", COMPACT) and fits("MMMMMMM", STANDARD) and fits("IIIIIII", COMPACT)
    assert max(text_width(w, 12) for w in bench) > 55  # close to the limit, not far below it
    # lengths stay uniform: rejection redraws the letters, not the length
    assert abs(sum(len(w) == 7 for w in rl) / len(rl) - 1 / 3) < 0.05


def test_benchmark_counts_and_disjointness() -> None:
    world = get_world("glyphs-compact")
    suite = world.benchmark_suite()
    assert len(suite) == 120 and [md["text"] for md in suite] == benchmark_lexicon("compact")
    assert {tag: sum(md["tag"] == tag for md in suite) for tag in TAGS} == dict.fromkeys(TAGS, 40)
    assert draw_words(2, 120, COMPACT, per_length=40) == benchmark_lexicon("compact")  # seed 2
    assert len(rl_lexicon("compact")) == 2000 and not set(rl_lexicon("compact")) & set(benchmark_lexicon("compact"))
    sliced = world.subsample_suite(suite, 4)
    assert len(sliced) == 12 and {md["tag"] for md in sliced} == set(TAGS)
    grid = world.grid_prompts()
    assert len(grid) == 8 and [len(parse_target(p)) for p in grid] == [5, 5, 6, 6, 6, 7, 7, 7]
    assert {parse_target(p) for p in grid} <= set(benchmark_lexicon("compact"))


def test_rl_prompt_stream_is_balanced_over_word_lengths() -> None:
    world = get_world("glyphs-compact")
    pool = world.training_prompts()  # what the trainer's pool is (every RL word once)
    assert len(pool) == 2000 and {md["text"] for md in pool} == set(rl_lexicon("compact"))
    assert all(md["tag"] == f"{len(md['text'])}_letters" for md in pool)
    stream = PromptStream(pool, "balanced")
    assert stream.tags == list(TAGS) and stream.shares() == pytest.approx(dict.fromkeys(TAGS, 1 / 3))
    drawn = stream.draw(np.random.default_rng(0), 3000)
    shares = {tag: sum(md["tag"] == tag for md in drawn) / 3000 for tag in TAGS}
    assert all(abs(v - 1 / 3) < 0.03 for v in shares.values()), shares
    weighted = PromptStream(pool, "balanced", {"7_letters": 1.0})
    assert {md["tag"] for md in weighted.draw(np.random.default_rng(0), 50)} == {"7_letters"}


def test_image_size_check_and_model_hint_name_the_compact_configs() -> None:
    world = get_world("glyphs-compact")
    world.check_image_size((32, 64))
    with pytest.raises(CheckpointError, match=r"makes 32x128 images but world 'glyphs-compact' needs 32x64") as e:
        world.check_image_size((32, 128))
    msg = str(e.value)
    assert "tdmr1 pretrain --world glyphs-compact --config configs/glyphs/pretrain_compact.yaml" in msg
    assert "--config configs/glyphs/distill_compact.yaml" in msg and "\n" not in msg
    with pytest.raises(CheckpointError, match="needs 32x128"):
        get_world("glyphs").check_image_size((32, 64))  # a compact model does not fit the standard level
    assert config_file("train", "compact") == "configs/glyphs/train_compact.yaml"
    assert config_file("train", "hard") == "configs/glyphs/train.yaml"
    for stage in ("pretrain", "distill", "train"):
        assert (REPO / config_file(stage, "compact")).is_file()


def test_configs_load_for_the_compact_world(tiny_backbone_overrides) -> None:
    pre = load_config(PretrainConfig, CONFIGS / "pretrain_compact.yaml")
    assert pre.world == "glyphs-compact" and pre.backbone.channels == 1
    assert pre.max_minutes == 120
    world = get_world("glyphs-compact")
    tok = WordTokenizer(world.vocabulary(), max_length=pre.backbone.max_tokens, mode="char")
    texts = [md["prompt"] for md in world.benchmark_suite() + world.training_prompts()]
    assert max(len(tok.split(t)) + 1 for t in texts) == 14 <= pre.backbone.max_tokens  # BOS + 4 + 2 + 7
    dis = load_config(DistillConfig, CONFIGS / "distill_compact.yaml")
    assert dis.world == "glyphs-compact" and dis.teacher == "checkpoints/glyphs-compact/teacher"
    assert dis.max_minutes is not None and dis.max_minutes <= 45
    rl = load_config(RLConfig, CONFIGS / "train_compact.yaml")
    assert (rl.world, rl.init, rl.prompt_stream) == ("glyphs-compact", "checkpoints/glyphs-compact/tdm4", "balanced")
    assert (rl.surrogate, rl.explicit_input, rl.explicit_loss) == ("explicit", "pixels", "mse")
    assert rl.surrogate_warmup > 0 and rl.surrogate_replay >= rl.surrogate_warmup and rl.tag_weights is None


def test_tiny_pretrain_step_on_the_compact_canvas(tiny_backbone_overrides, tmp_path: Path) -> None:
    overrides = [
        *tiny_backbone_overrides,
        "steps=2",
        "batch_size=4",
        "checkpoint_every=2",
        "snapshot_every=0",
        "sample_every=0",
        "sampling.steps=2",
        "threads=1",
        "max_minutes=null",
    ]
    cfg = load_config(PretrainConfig, CONFIGS / "pretrain_compact.yaml", overrides)
    assert build_model(cfg).image_shape == (1, 32, 64)
    model_dir = pretrain(cfg, tmp_path / "run", quiet=True)
    assert checkpoint_image_size(model_dir) == (32, 64)
    model = EmbeddedT2I.load(model_dir).eval()
    assert model.image_shape == (1, 32, 64) and model.meta["trained_steps"] == 2
    assert model.meta["world"] == "glyphs-compact" and model.meta["world_spec"] == COMPACT.describe()
    images = generate_images(model, ['a sign that says "KQTAXBW"'] * 2, [0, 1], SamplingConfig(steps=2, cfg=1.0))
    assert images.shape == (2, 32, 64, 3) and images.dtype == np.uint8
    get_world("glyphs-compact").check_image_size(model.image_shape[1:])
    assert (tmp_path / "run" / "samples" / "step_000002.png").is_file()


def test_ocr_reads_clean_compact_renders() -> None:
    pytest.importorskip("rapidocr")
    pytest.importorskip("onnxruntime")
    from tdmr1.worlds.glyphs import OcrReward

    world = get_world("glyphs-compact")
    suite = world.subsample_suite(world.benchmark_suite(), 2)  # two words of each length
    images = np.stack([world.render_oracle(md, None) for md in suite])
    out = OcrReward(threads=1)(images, [md["prompt"] for md in suite], suite)
    assert out.scores.tolist() == [1.0] * 6 and all(out.info["correct"]), out.info["reason"]


def test_oracle_result_file_covers_every_length() -> None:
    """benchmarks/results/glyphs_compact_oracle.json: the recorded clean-render check (spec bar >= 0.99)."""
    data = json.loads((REPO / "benchmarks" / "results" / "glyphs_compact_oracle.json").read_text())
    assert data["command"].startswith("python benchmarks/glyphs_v2_oracle.py --worlds glyphs-compact")
    result = data["results"]["glyphs-compact"]
    assert result["spec"] == COMPACT.describe() and result["images"] == 120 and result["image_size"] == [32, 64]
    assert list(result["clean"]["per_length"]) == list(TAGS)
    assert all(v["words"] == 40 for v in result["clean"]["per_length"].values())
    assert result["clean"]["ocr_accuracy"] >= 0.99 and data["meets_spec_bar"]


def test_demo_names_the_missing_compact_student(tmp_path: Path) -> None:
    from tdmr1.demo import run_demo

    with pytest.raises(CheckpointError) as err:
        run_demo("glyphs-compact", iterations=1, out=tmp_path / "demo", checkpoints=tmp_path / "ck", quiet=True)
    msg = str(err.value)
    assert f"shipped student not found at {tmp_path / 'ck' / 'glyphs-compact' / 'tdm4'}" in msg
    assert "no model is shipped for world 'glyphs-compact' yet" in msg
    assert "configs/glyphs/pretrain_compact.yaml" in msg and "configs/glyphs/distill_compact.yaml" in msg
    assert "\n" not in msg and not (tmp_path / "demo").exists()


def test_demo_of_glyphs_runs_the_shipped_compact_models(tmp_path: Path) -> None:
    """`tdmr1 demo --world glyphs` on a machine with only the compact (CPU) models shipped runs those."""
    from tdmr1.demo import _demo_world

    ck = tmp_path / "ck"
    assert _demo_world("glyphs", ck) == "glyphs"  # nothing shipped: the missing-student error names glyphs
    (ck / "glyphs-compact" / "tdm4").mkdir(parents=True)
    (ck / "glyphs-compact" / "tdm4" / "adapter.safetensors").write_bytes(b"")
    assert _demo_world("glyphs", ck) == "glyphs-compact"
    assert _demo_world("glyphs-hard", ck) == "glyphs-hard" and _demo_world("shapes", ck) == "shapes"
    (ck / "glyphs" / "tdm4").mkdir(parents=True)
    (ck / "glyphs" / "tdm4" / "adapter.safetensors").write_bytes(b"")
    assert _demo_world("glyphs", ck) == "glyphs"  # the standard level's own models win when shipped
