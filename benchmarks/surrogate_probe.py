"""Offline probe of the surrogate reward: how well does it learn to rank a world's images?

Draws a fixed set of student rollouts once (cached under runs/surrogate_probe/rollouts, so every
variant of a sweep trains on identical data), trains only the surrogate on them for a few epochs with
the trainer's own surrogate iteration (``surrogate_steps`` optimizer steps per batch; implicit or
explicit variant), and measures, on held-out rollouts, the within-prompt Pearson correlation between
the advantages and the surrogate's clean-state reward averaged over ``--draws`` noise draws in
[t_min_surrogate, t_max_surrogate] (the trainer's ``sur_rank``). Each call adds one named variant to the
results JSON.

Usage::

    python benchmarks/surrogate_probe.py --name authors --set threads=1
    python benchmarks/surrogate_probe.py --name explicit --set surrogate=explicit --set t_min_surrogate=0.25

Rollouts depend only on the seed, the batch shape and the student.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from tdmr1.config import apply_overrides, from_dict
from tdmr1.r1.config import RLConfig
from tdmr1.r1.diagnostics import clean_margin, pearson
from tdmr1.r1.rollout import Rollout
from tdmr1.r1.trainer import TDMR1Trainer

DEFAULT_OUT = "benchmarks/results/surrogate_probe_shapes.json"


def heldout_corr(tr: TDMR1Trainer, batches: list[Rollout], draws: int) -> float:
    """Within-prompt correlation of advantages with the surrogate's clean-state reward averaged over
    ``draws`` draws (the trainer's ``sur_rank``), pooled over the held-out batches."""
    cfg, advs, margins, groups = tr.cfg, [], [], []
    gen = torch.Generator().manual_seed(12345)  # the same draws for every pass and variant
    for i, ro in enumerate(batches):
        advs.append(ro.adv)
        t_min, t_max = cfg.t_min_surrogate, cfg.t_max_surrogate
        margins.append(clean_margin(tr.surrogate, ro.states[-1], ro.cond, ro.group, t_min, t_max, draws, gen))
        groups.append(ro.group + i * len(ro.adv))  # group ids distinct across batches
    return pearson(torch.cat(advs), torch.cat(margins), torch.cat(groups))


def train_epoch(tr: TDMR1Trainer, batches: list[Rollout]) -> float:
    """One surrogate iteration per batch (``surrogate_steps`` optimizer steps, replay as configured);
    returns the mean surrogate loss."""
    losses = []
    for ro in batches:
        losses.append(tr.train_surrogate(ro)["loss_sur"])
        tr.step += 1
    return sum(losses) / len(losses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True, help="variant name (key in the results JSON)")
    ap.add_argument("--train-batches", type=int, default=16)
    ap.add_argument("--heldout-batches", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], help="RLConfig override KEY=VALUE (repeatable)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    overrides = ["val_every=0", "prompts_per_iteration=8", "group_size=8", *args.set]
    cfg = from_dict(RLConfig, apply_overrides({}, overrides))
    tr = TDMR1Trainer(cfg, Path("runs") / "surrogate_probe" / args.name, quiet=True)
    t0 = time.time()
    batches = cached_rollouts(tr, args.train_batches + args.heldout_batches)
    train, held = batches[: args.train_batches], batches[args.train_batches :]
    history = [
        {"epoch": 0, "heldout_corr": heldout_corr(tr, held, args.draws), "loss_sur": None}
    ]  # surrogate == base: margin 0
    n_held = sum(len(ro.adv) for ro in held)
    entry = {
        "overrides": overrides,
        "train_images": sum(len(ro.adv) for ro in train),
        "heldout_images": n_held,
        "draws": args.draws,
        "heldout_corr_noise_std": round(1 / n_held**0.5, 3),
        "history": history,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, {tr.device}",
        "command": "python " + " ".join(sys.argv),
    }
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(tr, train)
        history.append({"epoch": epoch, "heldout_corr": heldout_corr(tr, held, args.draws), "loss_sur": loss})
        print(json.dumps(history[-1]), flush=True)
        entry["seconds"] = round(time.time() - t0, 1)
        write_entry(Path(args.out), args.name, entry)  # after every epoch: a long probe can be read as it goes


def cached_rollouts(tr: TDMR1Trainer, n: int) -> list[Rollout]:
    """The student's rollouts for this seed and batch shape, drawn once and kept under runs/ (every
    variant of a sweep then trains on identical data without paying for it again)."""
    cfg = tr.cfg
    key = f"{cfg.world}-{Path(cfg.init).name}-seed{cfg.seed}-{cfg.prompts_per_iteration}x{cfg.group_size}-{n}"
    path = Path("runs") / "surrogate_probe" / "rollouts" / f"{key}.pt"
    if path.is_file():
        return [Rollout(**ro) for ro in torch.load(path, weights_only=True)]  # tensors only
    batches = [tr.rollout() for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([vars(ro) for ro in batches], path)
    return batches


def write_entry(out: Path, name: str, entry: dict) -> None:
    """Merge one variant into the results JSON."""
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
