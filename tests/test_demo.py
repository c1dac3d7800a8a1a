"""`tdmr1 demo` end to end on tiny checkpoints: report with the three columns, grids and curve."""

from __future__ import annotations

import shutil

import pytest

from tdmr1.demo import run_demo
from tdmr1.errors import CheckpointError


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
        ],
        quiet=True,
    )
    text = report.read_text()
    assert "| tag | teacher @80 NFE" in text and "TDM @4 NFE" in text and "TDM-R1 @4 NFE (1 it.)" in text
    assert "| color_attr |" in text and "**overall**" in text
    assert "image pairs)" in text and "McNemar p =" in text
    assert "Surrogate ranking of each fresh batch" in text and "iterations 1-1: +0.00." in text  # fresh: exactly 0
    for name in ("grid_before.png", "grid_after.png", "reward_curve.png", "results.json"):
        assert (tmp_path / "demo" / name).is_file()


def test_demo_without_student_says_how_to_make_it(tmp_path):
    with pytest.raises(CheckpointError, match="tdmr1 distill"):
        run_demo("shapes", checkpoints=tmp_path, out=tmp_path / "demo", quiet=True)
