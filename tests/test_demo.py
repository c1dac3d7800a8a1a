"""`tdmr1 demo` end to end on tiny checkpoints: report with the three columns, grids and curve."""

from __future__ import annotations

import json
import shutil

import pytest

from tdmr1.config import load_config
from tdmr1.demo import run_demo, trained_tags
from tdmr1.errors import CheckpointError
from tdmr1.r1.config import RLConfig
from tdmr1.r1.gate import RewardGate


def test_demo_writes_report(tiny_student, tmp_path):
    ckpts = tmp_path / "checkpoints"
    shutil.copytree(tiny_student, ckpts / "shapes" / "tdm4")
    report = run_demo(
        "shapes",
        minutes=None,
        iterations=1,
        out=tmp_path / "demo",
        checkpoints=ckpts,
        extra=[
            "lora.rank=2",
            "prompts_per_iteration=2",
            "group_size=2",
            "minibatch_groups=1",
            "val_every=0",
            "sur_rank_every=1",
            "surrogate_init=null",
            "surrogate_warmup=2",
            "surrogate_warmup_steps=2",
            "surrogate_replay=3",
            "tag_weights={counting: 1.0}",
            "reward_gate=null",
        ],
        quiet=True,
    )
    text = report.read_text()
    assert "| tag | teacher @80 NFE" in text and "TDM @4 NFE" in text and "TDM-R1 @4 NFE (1 it.)" in text
    assert "| color_attr |" in text and "**overall**" in text
    assert "image pairs)" in text and "McNemar p =" in text
    assert "Surrogate ranking of each fresh batch" in text and "iterations 1-1:" in text
    # shapes' demo trains on counting only: that tag is measured again at 16 images a prompt, paired
    assert "## Trained tags" in text and "acted on prompts of counting only" in text
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["trained_tags"] == ["counting"]
    assert results["trained_tags_eval"]["r1"]["images"] == 12 * 16 == results["paired_trained_tags"]["pairs"]
    assert list(results["trained_tags_eval"]["r1"]["tags"]) == ["counting"]
    for name in ("grid_before.png", "grid_after.png", "reward_curve.png", "results.json"):
        assert (tmp_path / "demo" / name).is_file()


def test_demo_without_student_says_how_to_make_it(tmp_path):
    with pytest.raises(CheckpointError, match="tdmr1 distill"):
        run_demo("shapes", checkpoints=tmp_path, out=tmp_path / "demo", quiet=True)


def test_trained_tags_are_those_the_stream_draws():
    tags = ["single_object", "counting", "colors"]
    assert trained_tags(load_config(RLConfig, None, []), tags) == tags
    weighted = load_config(RLConfig, None, ["tag_weights={colors: 1, counting: 2, single_object: 0}"])
    assert trained_tags(weighted, tags) == ["counting", "colors"]
    pool = load_config(RLConfig, None, ["tag_weights={colors: 1}", "prompt_stream=pool"])
    assert trained_tags(pool, tags) == tags  # the pool stream ignores the weights
    gate = RewardGate(0.2)
    gate.observe({"sur_rank/counting": 0.5, "sur_rank/colors": 0.0}, ("counting", "colors") * 4)
    assert trained_tags(weighted, tags, gate) == ["counting"]
