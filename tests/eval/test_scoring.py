"""score_folder on GenEval layouts: oracle renders score 1.0; bad inputs become named problems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tdmr1.errors import DataError
from tdmr1.eval.scoring import print_report, score_folder, write_report_json
from tdmr1.geneval.layout import scan_layout, write_prompt_images
from tdmr1.worlds import get_world
from tdmr1.worlds.shapes import Obj, benchmark_suite, parse_prompt, render_oracle, render_scene


def test_oracle_bench_suite_scores_one(tmp_path: Path) -> None:
    suite = benchmark_suite()
    for p, md in enumerate(suite):
        write_prompt_images(tmp_path, p, md, [render_oracle(md, np.random.default_rng([0, p]))])
    report = score_folder("shapes", tmp_path)
    assert report.problems == []
    assert len(report.images) == len(suite) == 208
    assert report.overall == 1.0 and all(t["accuracy"] == 1.0 for t in report.tags.values())
    assert list(report.tags) == [
        "single_object",
        "two_object",
        "counting",
        "colors",
        "position",
        "color_attr",
    ]
    assert report.tags["color_attr"]["images"] == 100


def test_overall_is_unweighted_mean_of_tags(tmp_path: Path) -> None:
    circle = render_scene([Obj("circle", "red", 1, 1, 10)])
    write_prompt_images(tmp_path, 0, parse_prompt("a photo of a circle"), [circle, circle])
    write_prompt_images(tmp_path, 1, parse_prompt("a photo of a blue circle"), [circle] * 3)  # all wrong
    write_prompt_images(tmp_path, 2, parse_prompt("a photo of a red circle"), [circle])
    report = score_folder("shapes", tmp_path)
    assert report.tags["single_object"]["accuracy"] == 1.0 and report.tags["colors"]["accuracy"] == 0.25
    assert report.overall == pytest.approx((1.0 + 0.25) / 2)
    row = report.images[2]
    assert row == {
        "folder": "00001",
        "file": "0000.png",
        "tag": "colors",
        "prompt": "a photo of a blue circle",
        "correct": False,
        "score": 0.5,
        "reason": "expected blue circle>=1, found 0 blue; and 1 red",
    }


def _problem_paths(report, root: Path) -> dict[str, str]:
    return {Path(p["path"]).relative_to(root).as_posix(): p["problem"] for p in report.problems}


def test_bad_inputs_are_reported_not_fatal(tmp_path: Path) -> None:
    circle = render_scene([Obj("circle", "red", 1, 1, 10)])
    md = parse_prompt("a photo of a circle")
    write_prompt_images(tmp_path, 0, md, [circle])  # fine
    # 1: wrong size, RGBA with transparency, opaque RGBA and grayscale (harmless) in one folder
    folder = write_prompt_images(tmp_path, 1, md, [circle])
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "samples" / "0001.png")
    rgba = np.dstack([circle, np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "samples" / "0002.png")
    Image.fromarray(np.dstack([circle, np.full((32, 32), 255, np.uint8)])).save(folder / "samples" / "0003.png")
    Image.fromarray(circle.max(axis=-1)).save(folder / "samples" / "0004.png")  # mode L
    (folder / "samples" / "0005.png").write_bytes(b"not a png")
    # 2: missing samples; 3: unknown tag; 4: malformed JSON; 5: class outside the world; 6: no metadata
    (tmp_path / "00002").mkdir()
    (tmp_path / "00002" / "metadata.jsonl").write_text(json.dumps(md) + "\n")
    write_prompt_images(tmp_path, 3, {**md, "tag": "bogus"}, [circle])
    folder = write_prompt_images(tmp_path, 4, md, [circle])
    (folder / "metadata.jsonl").write_text('{"tag": "single_object", "include": [\n')
    write_prompt_images(tmp_path, 5, {"tag": "single_object", "include": [{"class": "dog", "count": 1}]}, [circle])
    (tmp_path / "00006" / "samples").mkdir(parents=True)

    report = score_folder(get_world("shapes"), tmp_path)
    problems = _problem_paths(report, tmp_path)
    assert set(problems) == {
        "00001/samples/0001.png",
        "00001/samples/0002.png",
        "00001/samples/0005.png",
        "00002/samples",
        "00003/metadata.jsonl",
        "00004/metadata.jsonl",
        "00005/metadata.jsonl",
        "00006/metadata.jsonl",
    }
    assert "wrong size 64x64" in problems["00001/samples/0001.png"]
    assert "transparent" in problems["00001/samples/0002.png"]
    assert "unreadable" in problems["00001/samples/0005.png"]
    assert "missing samples" in problems["00002/samples"]
    assert "unknown tag 'bogus'" in problems["00003/metadata.jsonl"]
    assert "malformed metadata" in problems["00004/metadata.jsonl"]
    assert "unknown class 'dog'" in problems["00005/metadata.jsonl"]
    assert "missing metadata.jsonl" in problems["00006/metadata.jsonl"]
    scored = [(r["folder"], r["file"]) for r in report.images]
    assert scored == [
        ("00000", "0000.png"),
        ("00001", "0000.png"),
        ("00001", "0003.png"),
        ("00001", "0004.png"),
    ]
    assert all(r["correct"] for r in report.images) and report.overall == 1.0

    out = write_report_json(report, tmp_path / "r" / "report.json")
    data = json.loads(out.read_text())
    assert set(data) == {"overall", "tags", "images", "problems"} and len(data["problems"]) == 8
    print_report(report)  # must not raise


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        score_folder("shapes", tmp_path / "nope")
    with pytest.raises(DataError, match="no prompt folders"):
        score_folder("shapes", tmp_path)
    write_prompt_images(tmp_path, 0, {"prompt": "a photo of a circle"}, [render_scene([])])
    entries, issues = scan_layout(tmp_path)
    assert len(entries) == 1 and issues == [] and entries[0].images[0].name == "0000.png"
    report = score_folder("shapes", tmp_path)  # bare prompt metadata is completed from the text
    assert report.images[0]["tag"] == "single_object" and not report.images[0]["correct"]
