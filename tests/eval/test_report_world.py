"""World-aware reports: headline metric, quality rows, per-world RL defaults."""

from __future__ import annotations

from tdmr1.eval.report import comparison_table
from tdmr1.worlds import get_world


def test_headline_is_the_worlds_first_metric():
    assert get_world("shapes").headline == ("overall", "overall accuracy")
    assert get_world("glyphs").headline == ("ocr_accuracy", "OCR accuracy")


def test_quality_keys_name_each_worlds_proxy():
    assert get_world("shapes").quality_keys() == ["off_palette_fraction"]
    assert get_world("glyphs").quality_keys() == ["gray_fraction", "ink_fraction"]


def test_glyphs_rl_defaults_are_the_ocr_column():
    defaults = dict(item.split("=") for item in get_world("glyphs").rl_defaults)
    assert defaults["beta"] == "10.0" and defaults["surrogate_cfg"] == "4.5"
    assert get_world("shapes").rl_defaults == ()


def test_comparison_table_adds_extra_rows_and_marks_missing():
    a = {"overall": 0.5, "tags": {"text": {"accuracy": 0.5}}, "ocr_accuracy": 0.75}
    table = comparison_table([("A", a), ("B", None)], ["text"], [("OCR accuracy", "ocr_accuracy")])
    lines = table.splitlines()
    assert lines[2] == "| text | 0.500 | n/a |"
    assert lines[-1] == "| OCR accuracy | 0.750 | n/a |"


def test_comparison_table_per_length_ocr_accuracy():
    """GlyphsEval's per-length table: tags are word lengths; ``value="mean_score"`` shows OCR accuracy."""
    tags = list(get_world("glyphs").tags)
    res = {
        "overall": 0.5,
        "mean_score": 0.8,
        "tags": {t: {"accuracy": 0.5, "mean_score": 0.75 + 0.01 * i} for i, t in enumerate(tags)},
    }
    table = comparison_table([("TDM", res), ("R1", None)], tags, value="mean_score").splitlines()
    assert table[2] == "| 4_letters | 0.750 | n/a |" and table[6] == "| 8_letters | 0.790 | n/a |"
    assert table[-1] == "| **overall** | 0.800 | n/a |"
    assert comparison_table([("TDM", res)], tags).splitlines()[-1] == "| **overall** | 0.500 |"
