"""benchmarks/bench_rl_iteration.py on the tiny student: both modes built from one config in one process,
JSON written with each mode's speed and the ratio, and the logged losses of the two modes agree."""

from __future__ import annotations

import json

import pytest

from bench_module import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_rl_iteration")


def test_tiny_benchmark_writes_speeds_and_matching_losses(bench, tiny_student, tmp_path):
    overrides = [
        f"init={tiny_student}",
        "lora.rank=2",
        "prompts_per_iteration=2",
        "group_size=2",
        "minibatch_groups=1",
        *bench.BENCH_OVERRIDES,
    ]
    out = tmp_path / "speed.json"
    result = bench.run_benchmark(overrides, iterations=1, warmup=1, out=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["images_per_iteration"] == 4
    for mode in ("off", "on"):
        speed = result["modes"][mode]
        assert len(speed["cpu_s_per_iteration"]) == len(speed["wall_s_per_iteration"]) == 1
        assert speed["images_per_s_cpu"] > 0 and speed["images_per_s_wall"] > 0
        assert len(result["logs"][mode]) == 2 and "loss_gen" in result["logs"][mode][0]
    assert result["ratio_cpu"] > 0 and result["ratio_wall"] > 0
    check = result["losses"]["on"]
    assert check["match"], check["max_rel_diff"]
    assert {"loss_fake", "loss_sur", "loss_gen", "reward"} <= set(check["max_rel_diff"])


def test_a_changed_loss_is_reported(bench):
    ref = [{"loss_gen": 1.0, "reward": 0.5}]
    assert bench.compare_logs(ref, [{"loss_gen": 1.0 + 1e-6, "reward": 0.5}])["match"]
    bad = bench.compare_logs(ref, [{"loss_gen": 1.01, "reward": 0.5}])
    assert not bad["match"] and bad["max_rel_diff"]["loss_gen"] == pytest.approx(0.01)
