"""How well does a TDM-R1 run's surrogate rank fresh images? Its ``sur_rank`` on N new batches, per tag.

Loads a run folder's state (the surrogate as last checkpointed), draws ``--batches`` fresh rollouts of its
generator from the run's own prompt stream (another seed: images the surrogate never saw) and writes the
mean within-prompt correlation, overall and per tag, with its standard error over batches.

    python benchmarks/surrogate_heldout.py --run runs/climb1 --batches 16 --out benchmarks/results/sur_heldout.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tdmr1.config import from_dict
from tdmr1.r1.config import RLConfig
from tdmr1.r1.trainer import TDMR1Trainer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--seed", type=int, default=12345, help="seed of the fresh rollouts (not the run's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = json.loads((args.run / "config.json").read_text())
    data = {k: v for k, v in data.items() if k in RLConfig.__dataclass_fields__}
    data.update(val_every=0, threads=args.threads, surrogate_warmup=0, surrogate_warmup_steps=0)
    cfg = from_dict(RLConfig, data)
    tr = TDMR1Trainer(cfg, args.run, quiet=True)
    tr.resume()
    tr.rng = np.random.default_rng(args.seed)
    tr.gen.manual_seed(args.seed)
    t0 = time.time()
    values: dict[str, list[float]] = {}
    for _ in range(args.batches):
        with torch.no_grad():
            ranks = tr.surrogate_rank(tr.rollout(with_predictions=False))
        for key, v in ranks.items():
            values.setdefault(key, []).append(v)
    result = {
        "run": str(args.run),
        "iteration": tr.step,
        "images": args.batches * cfg.prompts_per_iteration * cfg.group_size,
        "seconds": round(time.time() - t0, 1),
    }
    for key, vs in sorted(values.items()):
        se = statistics.stdev(vs) / len(vs) ** 0.5 if len(vs) > 1 else float("nan")
        result[key] = {"mean": round(statistics.fmean(vs), 4), "se": round(se, 4), "n": len(vs)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
