"""Paired before/after comparison: exact McNemar p-values, pairing by image, the `tdmr1 compare` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tdmr1.cli.app import app
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import DataError
from tdmr1.eval.evaluate import evaluate
from tdmr1.eval.paired import compare_reports, mcnemar_exact
from tdmr1.eval.scoring import ScoreReport
from tdmr1.models.embedded import EmbeddedT2I


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)  # all 10 discordant pairs one way
    assert mcnemar_exact(3, 1) == pytest.approx(2 * (1 + 4) / 16)  # 2 P(X <= 1), X ~ Bin(4, 1/2)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(49, 38) == mcnemar_exact(38, 49)


def _report(correct: dict[str, bool]) -> ScoreReport:
    rows = [
        {"folder": k.split("/")[0], "file": k.split("/")[1], "tag": "t", "correct": v, "score": float(v)}
        for k, v in correct.items()
    ]
    return ScoreReport(overall=0.0, tags={}, images=rows)


def test_compare_reports_counts_gains_and_losses_per_image():
    before = _report({"00000/0000.png": True, "00000/0001.png": False, "00001/0000.png": False, "00002/0000.png": True})
    after = _report({"00000/0000.png": False, "00000/0001.png": True, "00001/0000.png": True, "00003/0000.png": True})
    out = compare_reports(before, after)
    assert (out.pairs, out.gained, out.lost, out.unmatched) == (3, 2, 1, 2)
    assert out.tags == {"t": {"pairs": 3, "gained": 2, "lost": 1}}
    with pytest.raises(DataError, match="share no image"):
        compare_reports(before, _report({"00009/0000.png": True}))


def test_compare_command_sees_images_that_broke(tmp_path: Path):
    runner = CliRunner()
    prompts = tmp_path / "bench.jsonl"
    assert runner.invoke(app, ["world", "prompts", "--out", str(prompts)]).exit_code == 0
    lines = prompts.read_text().splitlines()[:6]
    prompts.write_text("\n".join(lines) + "\n")
    before, after = tmp_path / "before", tmp_path / "after"
    assert runner.invoke(app, ["world", "render", "--prompts", str(prompts), "--out", str(before)]).exit_code == 0
    shutil.copytree(before, after)
    for png in sorted(after.glob("0000[0-2]/samples/0000.png")):  # three images go black: wrong after
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    result = runner.invoke(app, ["compare", str(before), str(after), "--json", str(tmp_path / "cmp.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "cmp.json").read_text())
    assert (data["pairs"], data["gained"], data["lost"]) == (24, 0, 3)
    assert data["mcnemar_p"] == pytest.approx(0.25)


def test_evaluate_on_some_tags_samples_only_their_prompts(tiny_student, tmp_path):
    model = EmbeddedT2I.load(tiny_student).eval()
    four = SamplingConfig(steps=4, cfg=1.0, sampler="euler", shift=3.0)
    res = evaluate(model, "shapes", four, tmp_path / "ev", 2, None, 0, True, False, ["counting", "colors"])
    assert set(res["tags"]) == {"counting", "colors"} and res["images"] == (12 + 32) * 2
    with pytest.raises(DataError, match="tags must name"):
        evaluate(model, "shapes", four, tmp_path / "ev2", 2, None, 0, True, False, ["dogs"])
