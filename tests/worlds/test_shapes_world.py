"""World registry, oracle renderer and the CLI commands (render, prompts, score)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tdmr1.cli.world import score_command, world_app
from tdmr1.errors import ConfigError, DataError
from tdmr1.geneval.layout import read_prompt_file, write_prompt_file
from tdmr1.worlds import get_world, known_worlds
from tdmr1.worlds.shapes import all_prompts, check_image, detect, parse_prompt, render_scene, sample_scene_for
from tdmr1.worlds.shapes.prompts import TAGS


def test_registry() -> None:
    world = get_world("shapes")
    assert world is get_world("shapes") and "shapes" in known_worlds()
    assert world.image_size == (32, 32) and world.images_per_prompt == 4 and world.tags == TAGS
    assert world.make_reward().name == "shapes"
    with pytest.raises(ConfigError, match="unknown world 'nope' \\(known: .*shapes"):
        get_world("nope")
    vocab = set(world.vocabulary())
    _, captions = world.training_batch(np.random.default_rng(0), 200)
    words = {w for text in captions + [md["prompt"] for md in world.benchmark_suite()] for w in text.split()}
    assert words <= vocab
    assert len(world.subsample_suite(world.benchmark_suite(), 2)) == 12
    assert len(world.grid_prompts()) == 8


def test_oracle_satisfies_every_prompt_with_distractors() -> None:
    rng = np.random.default_rng(0)
    extra = 0
    for tag in TAGS:
        for md in all_prompts(tag)[:60]:
            scene = sample_scene_for(md, rng, max_distractors=2)
            assert check_image(render_scene(scene), md).correct
            mentioned = {c["class"] for c in md["include"]}
            extra += any(o.cls not in mentioned for o in scene)
    assert extra > 20
    img = get_world("shapes").render_oracle(parse_prompt("a photo of four circles"), rng)
    assert [d.cls for d in detect(img)] == ["circle"] * 4
    with pytest.raises(DataError, match="at most 4"):
        sample_scene_for({"tag": "counting", "include": [{"class": "circle", "count": 5}]}, rng)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(world_app, name="world")
    app.command("score")(score_command)
    return app


def test_cli_prompts_render_score(tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    bench = tmp_path / "bench.jsonl"
    res = runner.invoke(app, ["world", "prompts", "--world", "shapes", "--split", "bench", "--out", str(bench)])
    assert res.exit_code == 0, res.output
    assert len(read_prompt_file(bench)) == 208
    train = tmp_path / "train.jsonl"
    res = runner.invoke(app, ["world", "prompts", "--split", "train", "--n", "50", "--out", str(train)])
    assert res.exit_code == 0 and len(train.read_text().splitlines()) == 50

    small = tmp_path / "small.txt"
    small.write_text("a photo of a circle\na photo of three crosses\n")
    mixed = {  # GenEval-format metadata outside the six templates: colour + position
        "tag": "position",
        "include": [
            {"class": "cross", "count": 1, "color": "blue"},
            {"class": "square", "count": 1, "color": "red", "position": ["below", 0]},
        ],
        "prompt": "a photo of a red square below a blue cross",
    }
    write_prompt_file(tmp_path / "mixed.jsonl", [mixed])
    res = runner.invoke(
        app, ["world", "render", "--prompts", str(tmp_path / "mixed.jsonl"), "--out", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "m" / "00000" / "samples").iterdir())) == 4
    out = tmp_path / "imgs"
    res = runner.invoke(
        app, ["world", "render", "--prompts", str(small), "--out", str(out), "--images-per-prompt", "2"]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "00001" / "samples").iterdir()) == ["0000.png", "0001.png"]
    assert json.loads((out / "00001" / "metadata.jsonl").read_text())["tag"] == "counting"
    res = runner.invoke(app, ["world", "render", "--prompts", str(small), "--out", str(out)])
    assert isinstance(res.exception, DataError) and "--overwrite" in str(res.exception)

    report = tmp_path / "report.json"
    res = runner.invoke(app, ["score", str(out), "--world", "shapes", "--json", str(report)])
    assert res.exit_code == 0, res.output
    assert "overall" in res.output and "1.000" in res.output
    assert json.loads(report.read_text())["overall"] == 1.0

    res = runner.invoke(app, ["world", "prompts", "--split", "valid", "--out", str(train)])
    assert isinstance(res.exception, DataError) and "unknown split" in str(res.exception)
    res = runner.invoke(app, ["score", str(out), "--world", "glyphz"])
    assert isinstance(res.exception, ConfigError)


def test_off_palette_fraction() -> None:
    from tdmr1.worlds.shapes.quality import off_palette_fraction

    world = get_world("shapes")
    clean, _ = world.training_batch(np.random.default_rng(0), 32)
    assert off_palette_fraction(clean) == 0.0
    muddy = clean.copy()
    fg = muddy.max(axis=-1) > 60
    muddy[fg] = (muddy[fg] // 2 + 60).astype(np.uint8)  # washed-out colours
    assert off_palette_fraction(muddy) > 0.5
