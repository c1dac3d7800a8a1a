"""benchmarks/learning_curve.py: every snapshot of a run evaluated, plotted against iterations, reward
queries and (resume-aware) wall time."""

from __future__ import annotations

import json
import shutil

import pytest

from bench_module import load_benchmark


def _load():
    return load_benchmark("learning_curve")


def test_wall_time_adds_up_over_resumed_segments(tmp_path):
    rows = [{"step": 1, "time": 10.0}, {"step": 2, "time": 20.0}, {"step": 3, "time": 5.0}, {"step": 4, "time": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _load().cumulative_times(tmp_path) == {1: 10.0, 2: 20.0, 3: 25.0, 4: 29.0}


def test_curve_evaluates_each_snapshot(tiny_student, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_student, run / "snapshots" / "iter_00002")
    (run / "config.json").write_text(json.dumps({"world": "shapes", "prompts_per_iteration": 4, "group_size": 8}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 2, "time": 12.5}) + "\n")
    evals = {}
    for name, overall in (("student", 0.5), ("teacher", 0.6)):
        evals[name] = tmp_path / f"{name}.json"
        evals[name].write_text(json.dumps({"overall": overall}))
    out = tmp_path / "curve"
    args = ["--run", str(run), "--out", str(out), "--limit-prompts", "1", "--images-per-prompt", "1"]
    _load().main([*args, "--student-eval", str(evals["student"]), "--teacher-eval", str(evals["teacher"])])
    result = json.loads((out / "learning_curve.json").read_text())
    first, snap = result["points"]
    assert first == {"iteration": 0, "reward_queries": 0, "wall_seconds": 0.0, "overall": 0.5}
    assert snap["iteration"] == 2 and snap["reward_queries"] == 64 and snap["wall_seconds"] == 12.5
    assert 0.0 <= snap["overall"] <= 1.0
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert result["teacher80_overall"] == pytest.approx(0.6)
