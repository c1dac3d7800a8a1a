"""Speed of one TDM-R1 iteration: the earlier recipe (``off``: roles run live on the peft model, the fake
update runs the generator again at each trained state) against this commit's default (``on``: merged role
copies, see ``tdmr1/models/lora/merged_roles.py``, and the fake update reusing the rollout's own x0 predictions).

Both trainers are built in one process at the demo config (``tdmr1.demo.DEMO_OVERRIDES``, 32 images per
iteration) with the same seed, and run iterations round-robin (off, on, off, on, ...), so machine load
hits both alike. The first ``--warmup`` iterations of each are not timed. Each iteration's logged numbers
(losses, rewards, gradient norms) are compared between the modes: they must agree to float tolerance, since
only the float rounding of the forwards differs. Wall time and process CPU time are both recorded; on a
shared machine the CPU time is the steadier measure (one thread: CPU time ~ wall time on an idle machine).

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/bench_rl_iteration.py --iterations 2 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tdmr1.config import load_config
from tdmr1.demo import DEMO_OVERRIDES
from tdmr1.r1.config import RLConfig
from tdmr1.r1.trainer import TDMR1Trainer

OUT = Path(__file__).parent / "results" / "rl_iteration_speed.json"
#: Timing-neutral extras: no validation or surrogate-ranking diagnostics inside the timed iterations.
BENCH_OVERRIDES = ["threads=1", "val_every=0", "sur_rank_every=0"]
RTOL, ATOL = 1e-3, 1e-6


def _agree(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= ATOL + RTOL * abs(b)


def compare_logs(reference: list[dict[str, float]], other: list[dict[str, float]]) -> dict[str, Any]:
    """Per logged key, the largest relative difference of ``other`` from ``reference`` over iterations,
    and whether every value agrees to ``RTOL`` / ``ATOL``."""
    worst: dict[str, float] = {}
    match = len(reference) == len(other)
    for ref, oth in zip(reference, other, strict=False):
        match &= set(ref) == set(oth)
        for key in ref.keys() & oth.keys():
            a, b = float(oth[key]), float(ref[key])
            rel = 0.0 if math.isnan(a) and math.isnan(b) else abs(a - b) / max(abs(b), ATOL)
            worst[key] = max(worst.get(key, 0.0), rel)
            match &= _agree(a, b)
    return {"match": bool(match), "rtol": RTOL, "atol": ATOL, "max_rel_diff": dict(sorted(worst.items()))}


def _recompute_generator_steps(trainer: TDMR1Trainer) -> None:
    """The earlier recipe's fake update: rollouts without their x0 predictions, so the fake update runs
    the (unchanged) generator again at each trained state."""
    rollout = trainer.rollout
    trainer.rollout = lambda: rollout().without_predictions()  # type: ignore[method-assign]


def run_benchmark(
    overrides: list[str],
    iterations: int = 2,
    warmup: int = 1,
    modes: tuple[str, ...] = ("off", "on"),
    out: Path | None = OUT,
) -> dict[str, Any]:
    """Build one trainer per mode (``off`` / ``on``: ``FewStepSystem.fast_roles``) from the same config,
    run ``warmup + iterations`` iterations of each round-robin, and return (and write to ``out``) speeds,
    ratio and the loss check."""
    cfg = load_config(RLConfig, None, overrides)
    images = cfg.prompts_per_iteration * cfg.group_size
    load_before = os.getloadavg()
    logs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for mode in modes:
            trainers[mode] = TDMR1Trainer(cfg, Path(tmp) / mode, quiet=True)
            trainers[mode].system.set_fast_roles(mode == "on")
            if mode == "off":
                _recompute_generator_steps(trainers[mode])
        for i in range(warmup + iterations):
            for mode in modes:
                w0, c0 = time.perf_counter(), time.process_time()
                stats = trainers[mode].iteration()
                w1, c1 = time.perf_counter(), time.process_time()
                logs[mode].append({k: float(v) for k, v in stats.items()})
                if i >= warmup:
                    wall[mode].append(w1 - w0)
                    cpu[mode].append(c1 - c0)
    result: dict[str, Any] = {
        "what": (
            "one TDM-R1 iteration (rollout, fake, surrogate, generator update): off = roles live, fake update "
            "re-runs the generator; on = merged copies, rollout's x0 reused"
        ),
        "overrides": overrides,
        "images_per_iteration": images,
        "iterations_timed": iterations,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "modes": {},
    }
    for mode in modes:
        w, c = statistics.median(wall[mode]), statistics.median(cpu[mode])
        result["modes"][mode] = {
            "wall_s_per_iteration": [round(t, 3) for t in wall[mode]],
            "cpu_s_per_iteration": [round(t, 3) for t in cpu[mode]],
            "images_per_s_wall": round(images / w, 4),
            "images_per_s_cpu": round(images / c, 4),
        }
    first, last = modes[0], modes[-1]
    speeds = result["modes"]
    result["ratio_cpu"] = round(speeds[last]["images_per_s_cpu"] / speeds[first]["images_per_s_cpu"], 3)
    result["ratio_wall"] = round(speeds[last]["images_per_s_wall"] / speeds[first]["images_per_s_wall"], 3)
    result["losses"] = {mode: compare_logs(logs[first], logs[mode]) for mode in modes[1:]}
    result["logs"] = logs
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per mode first")
    parser.add_argument("--modes", default="off,on", help="fast_roles off/on, the first is the reference")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--set", action="append", default=[], help="extra RL config override key=value")
    args = parser.parse_args()
    overrides = [*DEMO_OVERRIDES, *BENCH_OVERRIDES, *args.set]
    result = run_benchmark(overrides, args.iterations, args.warmup, tuple(args.modes.split(",")), args.out)
    summary = {k: v for k, v in result.items() if k not in ("logs", "overrides")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
