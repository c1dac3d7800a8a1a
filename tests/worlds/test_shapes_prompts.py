"""Prompt grammar, enumeration, benchmark suite, training split, prompt files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdmr1.errors import DataError
from tdmr1.geneval.layout import read_prompt_file as read_geneval_file
from tdmr1.worlds.shapes import (
    TAGS,
    all_prompts,
    benchmark_suite,
    parse_prompt,
    read_prompt_file,
    training_prompts,
)

#: GenEval's own prompt file (MIT, tests/data/geneval/LICENSE), kept in the repository
GENEVAL_FILE = Path(__file__).parents[1] / "data" / "geneval" / "evaluation_metadata.jsonl"


def test_distinct_prompt_counts() -> None:
    counts = {tag: len(all_prompts(tag)) for tag in TAGS}
    assert counts == {
        "single_object": 4,
        "two_object": 12,
        "counting": 12,
        "colors": 32,
        "position": 48,
        "color_attr": 672,
    }
    prompts = [md["prompt"] for tag in TAGS for md in all_prompts(tag)]
    assert len(set(prompts)) == len(prompts)


def test_templates_and_metadata_exact() -> None:
    assert parse_prompt("a photo of a circle left of a square") == {
        "tag": "position",
        "include": [
            {"class": "square", "count": 1},
            {"class": "circle", "count": 1, "position": ["left of", 0]},
        ],
        "prompt": "a photo of a circle left of a square",
    }
    assert parse_prompt("a photo of four crosses") == {
        "tag": "counting",
        "include": [{"class": "cross", "count": 4}],
        "exclude": [{"class": "cross", "count": 5}],
        "prompt": "a photo of four crosses",
    }
    assert parse_prompt("a photo of a orange triangle and a white circle") == {
        "tag": "color_attr",
        "include": [
            {"class": "triangle", "count": 1, "color": "orange"},
            {"class": "circle", "count": 1, "color": "white"},
        ],
        "prompt": "a photo of a orange triangle and a white circle",
    }
    assert parse_prompt("A photo of an orange circle")["prompt"] == "a photo of a orange circle"  # 'an' accepted
    assert list(parse_prompt("a photo of a circle and a square")) == ["tag", "include", "prompt"]
    assert list(parse_prompt("a photo of two circles")) == ["tag", "include", "exclude", "prompt"]
    with pytest.raises(DataError, match="not a ShapesEval template"):
        parse_prompt("a photo of a circle and a circle")
    for tag in TAGS:
        for md in all_prompts(tag):
            assert parse_prompt(md["prompt"]) == md and md["tag"] == tag


def test_benchmark_suite_deterministic() -> None:
    suite = benchmark_suite()
    assert suite == benchmark_suite(0)
    sizes = {tag: sum(md["tag"] == tag for md in suite) for tag in TAGS}
    assert sizes == {
        "single_object": 4,
        "two_object": 12,
        "counting": 12,
        "colors": 32,
        "position": 48,
        "color_attr": 100,
    }
    assert [md["tag"] for md in suite] == sorted((md["tag"] for md in suite), key=TAGS.index)
    assert [md for md in suite if md["tag"] == "colors"] == all_prompts("colors")
    other = {md["prompt"] for md in benchmark_suite(5) if md["tag"] == "color_attr"}
    assert other != {md["prompt"] for md in suite if md["tag"] == "color_attr"}


def test_training_prompts_hold_out_bench_color_attr() -> None:
    held = {md["prompt"] for md in benchmark_suite() if md["tag"] == "color_attr"}
    pool = training_prompts()
    names = {md["prompt"] for md in pool}
    assert len(pool) == 680 and len(names) == 680 and not names & held
    assert {md["prompt"] for md in all_prompts("position")} <= names  # small tags are shared
    drawn = training_prompts(seed=1, n=3000)
    assert drawn == training_prompts(seed=1, n=3000) and drawn != training_prompts(seed=2, n=3000)
    assert not {md["prompt"] for md in drawn} & held
    per_tag = {tag: sum(md["tag"] == tag for md in drawn) for tag in TAGS}
    assert all(400 < n < 600 for n in per_tag.values())  # tag-balanced
    with pytest.raises(DataError, match="differ"):
        training_prompts(seed=0)


def test_read_prompt_file_formats(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    md = parse_prompt("a photo of a red circle")
    f.write_text(json.dumps(md) + "\n\n" + "a photo of three squares\n")
    items = read_prompt_file(f)
    assert items[0] == md and items[1]["tag"] == "counting" and items[1]["include"][0]["count"] == 3
    assert read_geneval_file(f)[1] == {"prompt": "a photo of three squares"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"tag": "shapes", "include": [{"class": "circle", "count": 1}], "prompt": "x"}',
            "unknown tag 'shapes'",
        ),
        ('{"tag": "colors", "include": [{"class": "circle"}], "prompt": "x"}', "needs an integer 'count'"),
        (
            '{"tag": "position", "include": [{"class": "circle", "count": 1, "position": ["near", 0]}]}',
            "position",
        ),
        (
            '{"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "black"}]}',
            "unknown color",
        ),
        ('{"tag": "colors", "include": []}', "non-empty"),
        ('{"tag": "colors", "include": [{"class": "circle", "count": 1}]', "invalid JSON"),
        ("a photo of a dog", "not a ShapesEval template"),
    ],
)
def test_read_prompt_file_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text("a photo of a circle\n" + line + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_prompt_file(f)
    assert f"{f}:2:" in str(info.value)


def test_geneval_file_reads_generically_but_not_as_shapes(tmp_path: Path) -> None:
    assert len(read_geneval_file(GENEVAL_FILE)) == 553
    with pytest.raises(DataError, match=r":1: include\[0\]: unknown class 'bench'"):
        read_prompt_file(GENEVAL_FILE)
    with pytest.raises(DataError, match="not found"):
        read_prompt_file(tmp_path / "missing.txt")
