"""GlyphsEval without the OCR engine: renderer, lexicons, prompts, captions, metric, world record, reports."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tdmr1.errors import DataError
from tdmr1.geneval_layout import read_prompt_file as read_geneval_file
from tdmr1.geneval_layout import write_prompt_file
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.scoring import ScoreReport, print_summary
from tdmr1.worlds import get_world, known_worlds
from tdmr1.worlds.glyphs import (
    benchmark_lexicon,
    benchmark_suite,
    draw_words,
    exact,
    gray_fraction,
    levenshtein,
    parse_target,
    read_prompt_file,
    render_text,
    render_texts,
    resolve_metadata,
    rl_lexicon,
    sample_training_batch,
    text_accuracy,
    training_lexicon,
    training_prompts,
)
from tdmr1.worlds.glyphs.render import load_font

# ---------------------------------------------------------------- renderer


def test_render_shape_colours_and_determinism() -> None:
    img = render_text("KQTA")
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[..., 2]).all()
    assert img.min() == 0 and img.max() == 255
    assert (img[0] == 255).all() and (img[-1] == 255).all() and (img[:, 0] == 255).all()
    assert np.array_equal(img, render_text("KQTA"))
    assert not np.array_equal(img, render_text("KQTB"))
    batch = render_texts(["KQTA", "ABC"])
    assert batch.shape == (2, 32, 64, 3) and np.array_equal(batch[0], img)
    assert render_texts([]).shape == (0, 32, 64, 3)
    assert load_font() is load_font()  # loaded once


@pytest.mark.parametrize("word", ["KQTA", "ABC", "III", "WAX", "QJGY", "LLLL"])
def test_render_is_centred(word: str) -> None:
    ink = render_text(word)[..., 0] < 255
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    left, right = cols[0], 64 - 1 - cols[-1]
    top, bottom = rows[0], 32 - 1 - rows[-1]
    assert abs(left - right) <= 2 and abs(top - bottom) <= 2, (left, right, top, bottom)


def test_gray_fraction_of_clean_and_blurred_renders() -> None:
    clean = render_texts(benchmark_lexicon()[:50])
    assert 0.0 < gray_fraction(clean) < 0.06  # antialiased rims only (about 0.04)
    blurred = ((clean.astype(np.float32) + np.roll(clean, 1, axis=2) + np.roll(clean, 1, axis=1)) / 3).astype(np.uint8)
    assert gray_fraction(blurred) > 2 * gray_fraction(clean)
    assert gray_fraction(np.full((2, 32, 64, 3), 128, np.uint8)) == 1.0
    assert gray_fraction(np.zeros((0, 32, 64, 3), np.uint8)) == 0.0


# ---------------------------------------------------------------- lexicons


def test_lexicon_sizes_letters_and_disjointness() -> None:
    train, bench, rl = training_lexicon(), benchmark_lexicon(), rl_lexicon()
    assert (len(train), len(bench), len(rl)) == (4000, 200, 2000)
    for lex in (train, bench, rl):
        assert len(set(lex)) == len(lex)
        assert all(len(w) in (3, 4) and set(w) <= set(string.ascii_uppercase) for w in lex)
        assert {len(w) for w in lex} == {3, 4}
    assert not set(train) & set(bench) and not set(rl) & (set(train) | set(bench))


def test_lexicons_are_seeded_and_reproducible() -> None:
    assert draw_words(1, 4000) == training_lexicon()
    assert draw_words(2, 200, exclude=training_lexicon()) == benchmark_lexicon()
    assert draw_words(3, 2000, exclude=training_lexicon() + benchmark_lexicon()) == rl_lexicon()
    rng = np.random.default_rng(7)  # the documented draw order: length, then letters
    length = int(rng.integers(3, 5))
    first = "".join(string.ascii_uppercase[i] for i in rng.integers(0, 26, size=length))
    assert draw_words(7, 1) == [first]
    assert draw_words(7, 3, exclude=[first])[0] != first


# ---------------------------------------------------------------- prompts


def test_parse_target_and_resolve() -> None:
    assert parse_target('a sign that says "KQTA"') == "KQTA"
    assert parse_target('say "ab" then "CD"') == "ab"
    assert resolve_metadata({"prompt": 'a sign that says "kqTa"'}) == {
        "prompt": 'a sign that says "kqTa"',
        "tag": "text",
        "text": "KQTA",
    }
    md = {"prompt": "a sign", "text": "abc", "extra": 1}
    assert resolve_metadata(md) == {"prompt": "a sign", "text": "ABC", "extra": 1, "tag": "text"}


@pytest.mark.parametrize(
    ("md", "message"),
    [
        ({"prompt": "a sign that says KQTA"}, "no text in double quotes"),
        ({"prompt": 'a sign that says "KQTA'}, "no text in double quotes"),
        ({"prompt": 'a sign that says ""'}, "empty"),
        ({"prompt": 'a sign that says "R2D2"'}, "other than the letters A-Z"),
        ({"prompt": 'a sign that says "AB C"'}, "other than the letters A-Z"),
        ({"prompt": 'a sign that says "ABC"', "tag": "counting"}, "unknown tag 'counting'"),
        ({"prompt": 'a sign that says "ABC"', "text": "ABD"}, "differs from the quoted text"),
        ({"prompt": 'a sign that says "ABC"', "text": 3}, "must be a string"),
        ({"text": "ABC"}, "needs a string 'prompt'"),
        (["ABC"], "must be a JSON object"),
    ],
)
def test_bad_prompts_raise_data_error(md: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        resolve_metadata(md)  # type: ignore[arg-type]


def test_benchmark_and_training_prompts() -> None:
    suite = benchmark_suite()
    assert len(suite) == 200 and suite == benchmark_suite()
    assert suite[0] == {"prompt": f'a sign that says "{suite[0]["text"]}"', "tag": "text", "text": suite[0]["text"]}
    assert [md["text"] for md in suite] == benchmark_lexicon()
    assert all(resolve_metadata(md) == md for md in suite)
    pool = training_prompts()
    assert len(pool) == 2000 and sorted(md["text"] for md in pool) == sorted(rl_lexicon())
    assert pool == training_prompts() and pool != training_prompts(seed=4)
    drawn = training_prompts(seed=5, n=10)
    assert len(drawn) == 10 and {md["text"] for md in drawn} <= set(rl_lexicon())
    with pytest.raises(DataError, match="n must be >= 0"):
        training_prompts(n=-1)


def test_read_prompt_file(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a sign that says \\"ABC\\"", "tag": "text", "text": "ABC"}\n\na sign that says "xyz"\n')
    assert read_prompt_file(f) == [
        {"prompt": 'a sign that says "ABC"', "tag": "text", "text": "ABC"},
        {"prompt": 'a sign that says "xyz"', "tag": "text", "text": "XYZ"},
    ]
    f.write_text('a sign that says "ABC"\n\na sign without quotes\n')
    with pytest.raises(DataError, match=r"p.jsonl:3: prompt 'a sign without quotes' has no text in double quotes"):
        read_prompt_file(f)
    f.write_text('{"prompt": 5}\n')
    with pytest.raises(DataError, match=r"p.jsonl:1: metadata needs a string 'prompt'"):
        read_prompt_file(f)
    # the generic reader (``tdmr1 sample``) takes glyphs metadata, GenEval checks stay on by default
    write_prompt_file(f, benchmark_suite()[:3])
    assert len(read_geneval_file(f, known_tags=None, require_include=False)) == 3
    with pytest.raises(DataError, match="no 'include' clauses"):
        read_geneval_file(f, known_tags=None)


# ---------------------------------------------------------------- captions


def test_training_batch() -> None:
    images, captions = sample_training_batch(np.random.default_rng(0), 16)
    assert images.shape == (16, 32, 64, 3) and images.dtype == np.uint8 and len(captions) == 16
    train = set(training_lexicon())
    for img, cap in zip(images, captions, strict=True):
        word = parse_target(cap)
        assert cap == f'a sign that says "{word}"' and word in train
        assert np.array_equal(img, render_text(word))
    again, captions2 = sample_training_batch(np.random.default_rng(0), 16)
    assert np.array_equal(images, again) and captions == captions2


# ---------------------------------------------------------------- metric


def test_levenshtein() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "ABC") == levenshtein("ABC", "") == 3
    assert levenshtein("ABC", "ABC") == 0
    assert levenshtein("AB", "BA") == 2
    assert levenshtein("KQTA", "QTAK") == levenshtein("QTAK", "KQTA") == 2


@pytest.mark.parametrize(
    ("pred", "target", "score"),
    [
        ("KQTA", "KQTA", 1.0),
        ("XXKQTAYY", "KQTA", 1.0),  # target inside the prediction
        ("kq ta", "KQTA", 1.0),  # lower case and spaces normalised
        ("KQXTA", "KQTA", 0.75),  # insertion
        ("KQT", "KQTA", 0.75),  # deletion
        ("KQTB", "KQTA", 0.75),  # substitution
        ("QK", "KQTA", 0.25),  # insert K, K -> T, insert A: 1 - 3/4
        ("XYZW", "KQTA", 0.0),  # four substitutions
        ("", "KQTA", 0.0),  # nothing read
        ("ZZZZZZZZ", "ABC", 0.0),  # clipped at 0
        ("ABD", "ABC", 2 / 3),
    ],
)
def test_text_accuracy(pred: str, target: str, score: float) -> None:
    assert text_accuracy(pred, target) == pytest.approx(score)


def test_exact_match() -> None:
    assert exact(" k q t a ", "KQTA") and not exact("XKQTA", "KQTA") and not exact("", "KQTA")
    with pytest.raises(ValueError, match="empty"):
        text_accuracy("A", "")


# ---------------------------------------------------------------- world record and reports


def test_registry_and_world_record() -> None:
    world = get_world("glyphs")
    assert world is get_world("glyphs") and "glyphs" in known_worlds()
    assert world.image_size == (32, 64) and world.tags == ("text",) and world.images_per_prompt == 4
    assert world.tokenizer_mode == "char"
    assert world.vocabulary() == ["a", "sign", "that", "says", '"', *(f"#{c}" for c in string.ascii_uppercase)]
    assert world.grid_prompts() == [md["prompt"] for md in benchmark_suite()[:8]]
    assert len(world.subsample_suite(world.benchmark_suite(), 5)) == 5
    md = world.benchmark_suite()[3]
    assert np.array_equal(world.render_oracle(md, np.random.default_rng(0)), render_text(md["text"]))
    assert set(world.quality(render_texts(["ABC"]))) == {"gray_fraction"}
    assert [m.key for m in world.metrics] == ["ocr_accuracy", "exact_match"]
    assert get_world("shapes").metrics == ()


def test_char_tokenizer_covers_every_prompt_and_caption() -> None:
    world = get_world("glyphs")
    tok = WordTokenizer(world.vocabulary(), mode="char")
    _, captions = world.training_batch(np.random.default_rng(1), 64)
    texts = [md["prompt"] for md in world.benchmark_suite() + world.training_prompts()] + captions
    assert all(not tok.unknown_words(t) for t in texts)
    assert tok.split('a sign that says "KQTA"') == ["a", "sign", "that", "says", '"', "#K", "#Q", "#T", "#A", '"']
    ids, mask = tok.encode(texts[:4])
    assert int(mask.sum(1).max()) <= tok.max_length and (ids != tok.index["[UNK]"]).all()


def _fake_report(world_name: str) -> ScoreReport:
    rows = [{"tag": "text", "score": s, "correct": s == 1.0} for s in (1.0, 1.0, 0.5, 0.75)]
    tags = {"text": {"images": 4, "correct": 2, "accuracy": 0.5, "mean_score": 0.8125}}
    return ScoreReport(0.5, tags, rows, [], get_world(world_name).metrics)


def test_summary_and_print_show_ocr_accuracy() -> None:
    summary = _fake_report("glyphs").summary()
    assert summary["ocr_accuracy"] == summary["mean_score"] == 0.8125
    assert summary["exact_match"] == summary["overall"] == 0.5
    assert summary["metric_labels"] == {"ocr_accuracy": "OCR accuracy", "exact_match": "exact match"}
    full = _fake_report("glyphs").to_dict()
    assert full["ocr_accuracy"] == 0.8125 and full["exact_match"] == 0.5
    json.dumps(summary)
    console = Console(record=True, width=120)
    print_summary(summary, console=console)
    text = console.export_text()
    assert "OCR accuracy 0.812" in text and "exact match 0.500" in text
    shapes = _fake_report("shapes")
    assert set(shapes.summary()) == {"overall", "tags", "mean_score", "scored", "problems"}
    assert set(shapes.to_dict()) == {"overall", "tags", "images", "problems"}
