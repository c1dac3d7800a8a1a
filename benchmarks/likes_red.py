"""Learning a hidden "the shape is red" preference on ShapesEval: the rule, the prompts and the measurement
shared by the likes end-to-end test (tests/rewards/test_likes_e2e.py, a person in headless Chromium) and this
script, which runs the same training with the rule as an in-process reward (no browser) to pick settings.

- ``has_red_shape``: the hidden rule, read from the image alone: the ShapesEval checker finds an object
  (a connected region of at least 12 px of one palette colour) whose colour is red (220, 40, 40).
- ``prompt_split``: colour-free ShapesEval prompts (two_object, counting, position: red is possible and
  not asked for), shuffled with a fixed seed; the first ``n_held`` are held out, the rest train.
- ``red_rates``: the paired measurement: the same held-out prompts and seeds through two models, the
  per-image rule before / after and the exact McNemar test on the pairs.

    python benchmarks/likes_red.py --seeds 0 1 --out benchmarks/results/likes_red.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.eval.paired import mcnemar_exact
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import generate_images
from tdmr1.reward_protocol import RewardOutput
from tdmr1.worlds.shapes.checker import detect_batch
from tdmr1.worlds.shapes.prompts import all_prompts

STUDENT = "checkpoints/shapes/tdm4"
COLOUR_FREE_TAGS = ("two_object", "counting", "position")
#: RL settings of the end-to-end test (dotted overrides of RLConfig), picked with this script: the explicit
#: surrogate, the KL and CFG terms kept (defaults), lr_generator 3e-4. Without the KL / CFG terms and at
#: lr_generator 1e-3 (the brightness tests' values, tiny model) the student collapses to noise instead.
SETTINGS = [
    "prompts_per_iteration=2",
    "group_size=8",
    "minibatch_groups=2",
    "train_steps_per_iteration=1",
    "surrogate=explicit",
    "lr_head=1e-2",
    "surrogate_steps=2",
    "surrogate_replay=4",
    "lr_generator=3e-4",
    "val_every=0",
    "sur_rank_every=0",
    "threads=1",
]
ITERATIONS = 8
HELD_OUT_SEEDS = 4  # images per held-out prompt
SEED_BASE = 5000  # held-out image seeds: SEED_BASE + i


def has_red_shape(images: np.ndarray) -> np.ndarray:
    """Bool [N]: the checker finds a red object in each uint8 [N, H, W, 3] image (the hidden rule)."""
    return np.array([any(d.color == "red" for d in found) for found in detect_batch(images)], dtype=bool)


class RedReward:
    """The hidden rule as an in-process reward: 1 for an image with a red shape, else 0."""

    name = "red"

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict]) -> RewardOutput:
        red = has_red_shape(images)
        return RewardOutput(red.astype(np.float32), info={"correct": red.tolist()})


def prompt_split(n_held: int = 32, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training prompts, held-out prompts): disjoint, colour-free ShapesEval prompts."""
    pool = [md for tag in COLOUR_FREE_TAGS for md in all_prompts(tag)]
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[n_held:]], [pool[i] for i in order[:n_held]]


def _images(model_dir: str | Path, prompts: list[str], seeds: list[int]) -> np.ndarray:
    model = EmbeddedT2I.load(model_dir).eval()
    return generate_images(model, prompts, seeds, SamplingConfig(**model.meta["sampling"]))


def red_rates(before: str | Path, after: str | Path, held: list[dict[str, Any]]) -> dict[str, Any]:
    """Red-shape rate of two models on the held-out prompts, same seeds, and the paired test."""
    prompts = [md["prompt"] for md in held for _ in range(HELD_OUT_SEEDS)]
    seeds = [SEED_BASE + i for i in range(len(prompts))]
    b = has_red_shape(_images(before, prompts, seeds))
    a = has_red_shape(_images(after, prompts, seeds))
    gained, lost = int((a & ~b).sum()), int((b & ~a).sum())
    return {
        "images": len(prompts),
        "rate_before": float(b.mean()),
        "rate_after": float(a.mean()),
        "gained": gained,
        "lost": lost,
        "mcnemar_p": mcnemar_exact(gained, lost),
    }


def train_in_process(out: Path, seed: int, extra: list[str] | None = None) -> dict[str, Any]:
    """The test's training with the rule as an in-process reward; the paired result on held-out prompts."""
    from tdmr1.config import load_config
    from tdmr1.r1.config import RLConfig
    from tdmr1.r1.trainer import TDMR1Trainer

    cpu0, wall0 = time.process_time(), time.time()
    overrides = [f"init={STUDENT}", f"iterations={ITERATIONS}", f"seed={seed}", *SETTINGS, *(extra or [])]
    trainer = TDMR1Trainer(load_config(RLConfig, None, overrides), out, quiet=True)
    train, held = prompt_split()
    trainer.pool, trainer.reward = train, RedReward()
    trainer.run(resume=False)
    train_cpu = time.process_time() - cpu0
    result = red_rates(STUDENT, out / "model", held)
    like_rate = [json.loads(line).get("reward") for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        "extra": extra or [],
        **result,
        "reward_per_iteration": [r for r in like_rate if r is not None],
        "train_cpu_s": train_cpu,
        "total_cpu_s": time.process_time() - cpu0,
        "wall_s": time.time() - wall0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra RLConfig override")
    ap.add_argument("--work", default="runs/likes_red")
    ap.add_argument("--out", default="benchmarks/results/likes_red.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [train_in_process(Path(args.work) / f"seed{s}", s, args.extra) for s in args.seeds]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"settings": SETTINGS, "iterations": ITERATIONS, "runs": rows}, indent=2))
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "reward_per_iteration"}))


if __name__ == "__main__":
    main()
