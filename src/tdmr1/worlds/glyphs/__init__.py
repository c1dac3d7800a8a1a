"""GlyphsEval: short words (3-4 letters A-Z) on 32 x 64 images, scored by a real OCR engine (rapidocr).

Importing this package never imports rapidocr; the OCR reward loads it on first use.
"""

from tdmr1.worlds.glyphs.captions import sample_training_batch, sample_training_words
from tdmr1.worlds.glyphs.lexicon import benchmark_lexicon, draw_words, rl_lexicon, training_lexicon
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
from tdmr1.worlds.glyphs.quality import gray_fraction
from tdmr1.worlds.glyphs.render import render_text, render_texts
from tdmr1.worlds.glyphs.world import make_world, render_oracle

__all__ = [
    "TAGS",
    "OcrReward",
    "benchmark_lexicon",
    "benchmark_suite",
    "draw_words",
    "exact",
    "gray_fraction",
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
    "training_lexicon",
    "training_prompts",
]
