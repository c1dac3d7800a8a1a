"""GlyphsEval spec v2 without the OCR engine: renderer, width rule, lexicons and their disjointness, levels,
prompts, captions, metric, world record, per-length reports."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tdmr1.errors import CheckpointError, ConfigError, DataError
from tdmr1.eval.scoring import ScoreReport, print_summary
from tdmr1.geneval.layout import read_prompt_file as read_geneval_file
from tdmr1.geneval.layout import write_prompt_file
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.worlds import get_world, known_worlds
from tdmr1.worlds.glyphs import (
    COMPACT,
    HARD,
    STANDARD,
    benchmark_lexicon,
    benchmark_suite,
    draw_string,
    draw_words,
    exact,
    get_level,
    gray_fraction,
    held_out,
    ink_fraction,
    levenshtein,
    parse_target,
    read_prompt_file,
    render_text,
    render_texts,
    resolve_metadata,
    rl_lexicon,
    sample_training_batch,
    text_accuracy,
    text_width,
    training_prompts,
    training_words,
)
from tdmr1.worlds.glyphs.render import load_font

# ---------------------------------------------------------------- renderer


def test_render_shape_colours_and_determinism() -> None:
    img = render_text("KQTAXB")
    assert img.shape == (32, 128, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[..., 2]).all()
    assert img.min() == 0 and img.max() == 255
    assert (img[0] == 255).all() and (img[-1] == 255).all() and (img[:, 0] == 255).all() and (img[:, -1] == 255).all()
    assert np.array_equal(img, render_text("KQTAXB"))
    assert not np.array_equal(img, render_text("KQTAXC"))
    batch = render_texts(["KQTAXB", "ABCD"])
    assert batch.shape == (2, 32, 128, 3) and np.array_equal(batch[0], img)
    assert render_texts([]).shape == (0, 32, 128, 3)
    assert load_font() is load_font() and load_font().size == 16  # loaded once; 16 px by default


def _ink_box(img: np.ndarray) -> tuple[int, int, int, int]:
    ink = img[..., 0] < 255
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


@pytest.mark.parametrize("word", ["KQTA", "ABCDE", "IIIIII", "WAXWAXW", "QJGYQJGY", "MWMWMWMM"[:7], "LLLLLLLL"])
def test_render_is_centred(word: str) -> None:
    top, bottom, left, right = _ink_box(render_text(word))
    assert abs(left - (127 - right)) <= 2 and abs(top - (31 - bottom)) <= 2, (top, bottom, left, right)


def test_font_sizes_and_width_rule() -> None:
    """Standard text is 16 px DejaVu Sans Bold, hard 14 px; the widest lexicon strings still fit with margin."""
    assert (STANDARD.font_size, STANDARD.lengths, HARD.font_size, HARD.lengths) == (
        16,
        tuple(range(4, 9)),
        14,
        tuple(range(6, 11)),
    )
    assert text_width("WWWWWWWW", 16) > 120 and text_width("IIIIIIII", 16) < 120
    for level in (STANDARD, HARD):
        words = benchmark_lexicon(level) + rl_lexicon(level)
        widest = max(words, key=lambda w: text_width(w, level.font_size))
        assert text_width(widest, level.font_size) <= 120
        top, bottom, left, right = _ink_box(render_text(widest, level.font_size))
        assert left >= 2 and right <= 125  # never clipped
    small = render_text("ABCDEFGH", 14)
    assert (
        _ink_box(small)[1] - _ink_box(small)[0]
        < _ink_box(render_text("ABCDEFGH"))[1] - _ink_box(render_text("ABCDEFGH"))[0]
    )


def test_gray_fraction_of_clean_and_blurred_renders() -> None:
    clean = render_texts(benchmark_lexicon()[:50])
    assert 0.0 < gray_fraction(clean) < 0.06  # antialiased rims only
    blurred = ((clean.astype(np.float32) + np.roll(clean, 1, axis=2) + np.roll(clean, 1, axis=1)) / 3).astype(np.uint8)
    assert gray_fraction(blurred) > 1.5 * gray_fraction(clean)
    assert gray_fraction(np.full((2, 32, 128, 3), 128, np.uint8)) == 1.0
    assert gray_fraction(np.zeros((0, 32, 128, 3), np.uint8)) == 0.0


def test_ink_fraction_of_clean_bold_and_blank_renders() -> None:
    clean = render_texts(benchmark_lexicon()[:50])
    assert 0.03 < ink_fraction(clean) < 0.3  # letters on a mostly white sign
    bold = np.minimum(clean, np.roll(clean, 1, axis=2))  # strokes one pixel wider
    assert ink_fraction(bold) > 1.2 * ink_fraction(clean)
    assert ink_fraction(np.full((2, 32, 128, 3), 255, np.uint8)) == 0.0 == ink_fraction(np.zeros((0, 32, 128, 3)))


# ---------------------------------------------------------------- lexicons


@pytest.mark.parametrize("level", [STANDARD, HARD, COMPACT])
def test_lexicon_sizes_lengths_and_disjointness(level) -> None:
    bench, rl = benchmark_lexicon(level), rl_lexicon(level)
    assert (len(bench), len(rl)) == (40 * len(level.lengths), 2000)
    for lex in (bench, rl):
        assert len(set(lex)) == len(lex)
        assert all(set(w) <= set(string.ascii_uppercase) for w in lex)
        assert {len(w) for w in lex} == set(level.lengths)
        assert all(text_width(w, level.font_size) <= level.max_width for w in lex)
    assert all(sum(len(w) == n for w in bench) == 40 for n in level.lengths)  # 40 words per length
    assert not set(bench) & set(rl)
    assert held_out(level) == set(bench) | set(rl)


@pytest.mark.parametrize("level", [STANDARD, HARD, COMPACT])
def test_pretraining_stream_is_fresh_and_never_a_benchmark_or_rl_string(level, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    words = training_words(rng, 3000, level)
    assert len(words) == 3000 and not set(words) & held_out(level)
    assert {len(w) for w in words} == set(level.lengths)
    assert all(text_width(w, level.font_size) <= level.max_width for w in words)
    assert len(set(words)) > 2900  # fresh strings, not a small fixed list
    again = training_words(np.random.default_rng(0), 3000, level)
    assert words == again  # seeded by the run's generator
    # rejection by set membership: a stream that first yields a benchmark word must skip it
    from tdmr1.worlds.glyphs import lexicon

    bench_word = benchmark_lexicon(level)[0]
    calls = iter([bench_word, "ZZZZZZ"[: level.min_len]])
    monkeypatch.setattr(lexicon, "draw_string", lambda stream, lvl: next(calls))
    assert lexicon.training_words(np.random.default_rng(0), 1, level) == ["ZZZZZZ"[: level.min_len]]


def test_lexicons_are_seeded_and_reproducible() -> None:
    assert draw_words(2, 200, per_length=40) == benchmark_lexicon()
    assert draw_words(3, 2000, exclude=benchmark_lexicon()) == rl_lexicon()
    assert draw_words(2, 200, HARD, per_length=40) == benchmark_lexicon("hard")
    rng = np.random.default_rng(7)  # the documented draw order: length, then letters (then the width rule)
    length = int(rng.integers(4, 9))
    first = "".join(string.ascii_uppercase[i] for i in rng.integers(0, 26, size=length))
    assert text_width(first) <= 120 and draw_words(7, 1) == [first] == [draw_string(np.random.default_rng(7))]
    assert draw_words(7, 3, exclude=[first])[0] != first
    with pytest.raises(ValueError, match="per_length"):
        draw_words(2, 10, per_length=40)


def test_width_rule_redraws_the_letters_at_the_same_length() -> None:
    class Rigged:  # a generator whose first 8-letter string is too wide
        def __init__(self) -> None:
            self.letters = [[22] * 8, [8] * 8]  # WWWWWWWW (141 px), then IIIIIIII

        def integers(self, low, high=None, size=None):
            return 8 if size is None else np.array(self.letters.pop(0))

    assert draw_string(Rigged()) == "IIIIIIII"  # type: ignore[arg-type]


def test_levels() -> None:
    assert get_level("standard") is STANDARD and get_level(HARD) is HARD
    with pytest.raises(ConfigError, match="unknown glyphs level 'easy'"):
        get_level("easy")
    assert STANDARD.tags == ("4_letters", "5_letters", "6_letters", "7_letters", "8_letters")
    assert "hard" in HARD.describe() and "14 px" in HARD.describe() and "32x128" in HARD.describe()


# ---------------------------------------------------------------- prompts


def test_parse_target_and_resolve() -> None:
    assert parse_target('a sign that says "KQTA"') == "KQTA"
    assert parse_target('say "ab" then "CD"') == "ab"
    assert resolve_metadata({"prompt": 'a sign that says "kqTa"'}) == {
        "prompt": 'a sign that says "kqTa"',
        "tag": "4_letters",
        "text": "KQTA",
    }
    md = {"prompt": "a sign", "text": "abc", "extra": 1}
    assert resolve_metadata(md) == {"prompt": "a sign", "text": "ABC", "extra": 1, "tag": "3_letters"}
    assert resolve_metadata({"prompt": '"ABCDEFGHIJKL"', "tag": "12_letters"})["tag"] == "12_letters"


@pytest.mark.parametrize(
    ("md", "message"),
    [
        ({"prompt": "a sign that says KQTA"}, "no text in double quotes"),
        ({"prompt": 'a sign that says "KQTA'}, "no text in double quotes"),
        ({"prompt": 'a sign that says ""'}, "empty"),
        ({"prompt": 'a sign that says "R2D2"'}, "other than the letters A-Z"),
        ({"prompt": 'a sign that says "AB C"'}, "other than the letters A-Z"),
        ({"prompt": 'a sign that says "ABC"', "tag": "counting"}, "tag 'counting' does not match the 3-letter"),
        ({"prompt": 'a sign that says "ABCD"', "tag": "text"}, "expected '4_letters'"),
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
    text = suite[0]["text"]
    assert suite[0] == {"prompt": f'a sign that says "{text}"', "tag": f"{len(text)}_letters", "text": text}
    assert [md["text"] for md in suite] == benchmark_lexicon()
    assert all(resolve_metadata(md) == md for md in suite)
    pool = training_prompts()
    assert len(pool) == 2000 and sorted(md["text"] for md in pool) == sorted(rl_lexicon())
    assert pool == training_prompts() and pool != training_prompts(seed=4)
    drawn = training_prompts(seed=5, n=10)
    assert len(drawn) == 10 and {md["text"] for md in drawn} <= set(rl_lexicon())
    assert {md["text"] for md in training_prompts(level="hard")} == set(rl_lexicon("hard"))
    with pytest.raises(DataError, match="n must be >= 0"):
        training_prompts(n=-1)


def test_read_prompt_file(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(
        '{"prompt": "a sign that says \\"ABC\\"", "tag": "3_letters", "text": "ABC"}\n\na sign that says "xyz"\n'
    )
    assert read_prompt_file(f) == [
        {"prompt": 'a sign that says "ABC"', "tag": "3_letters", "text": "ABC"},
        {"prompt": 'a sign that says "xyz"', "tag": "3_letters", "text": "XYZ"},
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


@pytest.mark.parametrize("level", [STANDARD, HARD, COMPACT])
def test_training_batch(level) -> None:
    images, captions = sample_training_batch(np.random.default_rng(0), 16, level)
    assert images.shape == (16, *level.image_size, 3) and images.dtype == np.uint8 and len(captions) == 16
    banned = held_out(level)
    for img, cap in zip(images, captions, strict=True):
        word = parse_target(cap)
        assert cap == f'a sign that says "{word}"' and word not in banned and len(word) in level.lengths
        assert np.array_equal(img, render_text(word, level.font_size, level.width, level.height))
    again, captions2 = sample_training_batch(np.random.default_rng(0), 16, level)
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
    assert world is get_world("glyphs") and {"glyphs", "glyphs-hard"} <= set(known_worlds())
    assert world.image_size == (32, 128) and world.tags == STANDARD.tags and world.images_per_prompt == 4
    assert world.tokenizer_mode == "char" and world.spec == STANDARD.describe()
    assert world.vocabulary() == ["a", "sign", "that", "says", '"', *(f"#{c}" for c in string.ascii_uppercase)]
    grid = world.grid_prompts()
    assert len(grid) == 8 and [len(parse_target(p)) for p in grid] == [4, 5, 6, 6, 7, 7, 8, 8]
    assert {parse_target(p) for p in grid} <= set(benchmark_lexicon())
    sliced = world.subsample_suite(world.benchmark_suite(), 5)
    assert len(sliced) == 25 and {md["tag"] for md in sliced} == set(world.tags)  # 5 words of each length
    md = world.benchmark_suite()[3]
    assert np.array_equal(world.render_oracle(md, np.random.default_rng(0)), render_text(md["text"]))
    assert set(world.quality(render_texts(["ABCD"]))) == {"gray_fraction", "ink_fraction"}
    assert [m.key for m in world.metrics] == ["ocr_accuracy", "exact_match"]
    assert get_world("shapes").metrics == ()
    hard = get_world("glyphs-hard")
    assert hard.image_size == (32, 128) and hard.tags == HARD.tags and len(hard.benchmark_suite()) == 200
    md = hard.benchmark_suite()[0]
    assert np.array_equal(hard.render_oracle(md, np.random.default_rng(0)), render_text(md["text"], 14))
    assert {len(md["text"]) for md in hard.training_prompts(n=50)} <= set(HARD.lengths)
    assert hard.training_batch(np.random.default_rng(0), 2)[0].shape == (2, 32, 128, 3)


def test_image_shape_mismatch_names_the_fix() -> None:
    world = get_world("glyphs")
    world.check_image_size((32, 128))
    with pytest.raises(
        CheckpointError, match=r"image shape mismatch: the model makes 32x64 images .* needs 32x128"
    ) as e:
        world.check_image_size((32, 64))
    assert "tdmr1 pretrain --world glyphs --config configs/glyphs/pretrain.yaml" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="tdmr1 pretrain --world glyphs-hard"):
        get_world("glyphs-hard").check_image_size((32, 64))


def test_char_tokenizer_covers_every_prompt_and_caption() -> None:
    world = get_world("glyphs")
    tok = WordTokenizer(world.vocabulary(), max_length=20, mode="char")
    _, captions = world.training_batch(np.random.default_rng(1), 64)
    texts = [md["prompt"] for md in world.benchmark_suite() + world.training_prompts()] + captions
    assert all(not tok.unknown_words(t) for t in texts)
    assert tok.split('a sign that says "KQTA"') == ["a", "sign", "that", "says", '"', "#K", "#Q", "#T", "#A", '"']
    ids, mask = tok.encode(texts[:4])
    assert (ids != tok.index["[UNK]"]).all()
    longest = max(len(tok.split(md["prompt"])) + 1 for md in get_world("glyphs-hard").benchmark_suite())
    assert longest == 17 <= 20  # BOS + 4 words + 2 quotes + 10 letters: configs/glyphs/pretrain.yaml max_tokens


def _fake_report(world_name: str) -> ScoreReport:
    rows = [{"tag": "4_letters", "score": s, "correct": s == 1.0} for s in (1.0, 1.0, 0.5, 0.75)]
    tags = {"4_letters": {"images": 4, "correct": 2, "accuracy": 0.5, "mean_score": 0.8125}}
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
    assert "OCR accuracy 0.812" in text and "exact match 0.500" in text and "4_letters" in text
    shapes = _fake_report("shapes")
    assert set(shapes.summary()) == {"overall", "tags", "mean_score", "scored", "problems"}
    assert set(shapes.to_dict()) == {"overall", "tags", "images", "problems"}
