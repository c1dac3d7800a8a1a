"""GlyphsEval (spec v2, docs/GLYPHS_SPEC.md): random A-Z words on white signs at three levels (``glyphs``,
``glyphs-hard``, ``glyphs-compact``), scored by a real OCR engine with per-length metrics; importing this package
never imports rapidocr (the OCR reward loads it on first use)."""

from tdmr1.worlds.glyphs.captions import sample_training_batch, sample_training_words
from tdmr1.worlds.glyphs.levels import COMPACT, HARD, LEVELS, STANDARD, Level, get_level, length_tag
from tdmr1.worlds.glyphs.lexicon import benchmark_lexicon, draw_string, draw_words, held_out, rl_lexicon, training_words
from tdmr1.worlds.glyphs.metric import exact, levenshtein, normalize_prediction, text_accuracy
from tdmr1.worlds.glyphs.ocr import OcrReward, read_texts
from tdmr1.worlds.glyphs.prompts import (
    TAGS,
    benchmark_suite,
    make_metadata,
    make_prompt,
    parse_target,
    read_prompt_file,
    resolve_metadata,
    training_prompts,
)
from tdmr1.worlds.glyphs.quality import gray_fraction, ink_fraction
from tdmr1.worlds.glyphs.render import render_text, render_texts, text_width
from tdmr1.worlds.glyphs.world import make_world, render_oracle

__all__ = [
    "COMPACT",
    "HARD",
    "LEVELS",
    "STANDARD",
    "TAGS",
    "Level",
    "OcrReward",
    "benchmark_lexicon",
    "benchmark_suite",
    "draw_string",
    "draw_words",
    "exact",
    "get_level",
    "gray_fraction",
    "ink_fraction",
    "held_out",
    "length_tag",
    "levenshtein",
    "make_metadata",
    "make_prompt",
    "make_world",
    "normalize_prediction",
    "parse_target",
    "read_prompt_file",
    "read_texts",
    "render_oracle",
    "render_text",
    "render_texts",
    "resolve_metadata",
    "rl_lexicon",
    "sample_training_batch",
    "sample_training_words",
    "text_accuracy",
    "text_width",
    "training_prompts",
    "training_words",
]
