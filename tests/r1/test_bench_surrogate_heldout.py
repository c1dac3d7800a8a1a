"""benchmarks/surrogate_heldout.py: a run's checkpointed surrogate scored on fresh batches, per tag."""

from __future__ import annotations

import json

from bench_module import load_benchmark
from helpers import rl_cfg
from tdmr1.r1.trainer import TDMR1Trainer


def test_heldout_ranking_of_a_checkpointed_run(tiny_student, tmp_path):
    run = tmp_path / "run"
    cfg = rl_cfg(tiny_student, "surrogate=explicit", "explicit_input=pixels", "head_width=8", "iterations=1")
    TDMR1Trainer(cfg, run, quiet=True).run()
    out = tmp_path / "heldout.json"
    load_benchmark("surrogate_heldout").main(["--run", str(run), "--batches", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["iteration"] == 1 and result["images"] == 2 * 2 * 2
    assert result["sur_rank"]["n"] == 2 and -1.0 <= result["sur_rank"]["mean"] <= 1.0
    assert any(key.startswith("sur_rank/") for key in result)  # broken down by tag
