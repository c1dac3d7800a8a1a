"""Checker throughput on one CPU core: images/s of the ShapesEval reward on rendered random scenes.

Usage: ``python benchmarks/bench_checker.py [--images 2000] [--repeats 5] [--batch 256]
[--out benchmarks/results/checker.json]``
Threads are pinned to 1 (environment variables set before numpy/scipy load). The timed call is the full
reward, ``ShapesChecker()(images, prompts, metadata)``: detection plus GenEval rules, with prompts drawn
from the benchmark suite; detection alone is reported too.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tdmr1.worlds.shapes import ShapesChecker, benchmark_suite, detect_batch, render_scenes, sample_scene  # noqa: E402

TARGET = 1000.0


def _best_rate(fn, n_images: int, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / min(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256, help="images per reward call")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "checker.json")
    args = parser.parse_args()
    try:  # pin this process to one core where the OS allows it
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass

    rng = np.random.default_rng(0)
    images = render_scenes([sample_scene(rng) for _ in range(args.images)])
    suite = benchmark_suite()
    metadata = [suite[i] for i in rng.integers(len(suite), size=args.images)]
    prompts = [md["prompt"] for md in metadata]
    checker = ShapesChecker()

    def reward() -> None:
        for s in range(0, args.images, args.batch):
            checker(images[s : s + args.batch], prompts[s : s + args.batch], metadata[s : s + args.batch])

    def detection() -> None:
        for s in range(0, args.images, args.batch):
            detect_batch(images[s : s + args.batch])

    reward()  # warm-up
    rate, times = _best_rate(reward, args.images, args.repeats)
    det_rate, _ = _best_rate(detection, args.images, args.repeats)
    result = {
        "images_per_second": round(rate, 1),
        "detection_images_per_second": round(det_rate, 1),
        "target": TARGET,
        "meets_target": rate >= TARGET,
        "images": args.images,
        "batch": args.batch,
        "repeats": args.repeats,
        "seconds_per_repeat": [round(t, 4) for t in times],
        "threads": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
