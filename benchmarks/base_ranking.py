"""Does the frozen base already rank a world's reward? A pre-flight check for TDM-R1.

The surrogate starts as the base, and its implicit reward is a difference of denoising errors, so RL
learns fastest where the base's own prompt conditioning already prefers the images the reward prefers.
This draws rollouts of the student, and for each noise level measures the within-prompt correlation
between the advantages and two base-only scores, each averaged over ``--draws`` group-shared draws:

- ``cond_gain``: d_uncond - d_cond, how much the prompt helps the base denoise the image (a
  classifier read off the diffusion model);
- ``neg_d_cond``: -d_cond, the base's conditional denoising error alone.

Usage::

    python benchmarks/base_ranking.py --world shapes --levels 0.1 0.3 0.55 0.8
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
from tdmr1.r1.diagnostics import pearson
from tdmr1.r1.draws import per_group
from tdmr1.r1.losses import surrogate_target
from tdmr1.r1.rollout import Rollout
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.tdm.losses import per_sample_mean


@torch.no_grad()
def base_scores(tr: TDMR1Trainer, ro: Rollout, level: float, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond_gain, neg_d_cond) [N] of the clean images at noise ``level``, averaged over draws."""
    sys_, n = tr.system, len(ro.adv)
    n_groups = int(ro.group.max()) + 1
    x0 = ro.states[-1]
    uncond = (tr.uncond_1[0].expand(n, -1, -1), tr.uncond_1[1].expand(n, -1))
    tau = torch.full((n,), level, device=tr.device)
    gain, neg_d = torch.zeros(n, device=tr.device), torch.zeros(n, device=tr.device)
    for _ in range(draws):
        xi = per_group(sys_.randn(n_groups), ro.group)
        x_tau, v_star = surrogate_target(x0, torch.zeros_like(tau), xi, tau)
        d_cond = per_sample_mean((v_star - sys_.velocity("base", x_tau, tau, ro.cond)).pow(2))
        d_uncond = per_sample_mean((v_star - sys_.velocity("base", x_tau, tau, uncond)).pow(2))
        gain += d_uncond - d_cond
        neg_d -= d_cond
    return gain / draws, neg_d / draws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="shapes")
    ap.add_argument("--init", default=None, help="student checkpoint (default: the config's)")
    ap.add_argument("--batches", type=int, default=3, help="rollout batches of 16 prompts x 16 images")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.3, 0.55, 0.8])
    ap.add_argument("--out", default=None, help="default: benchmarks/results/base_ranking_<world>.json")
    args = ap.parse_args()
    overrides = [f"world={args.world}", "val_every=0", "prompts_per_iteration=16", "group_size=16"]
    overrides += ["minibatch_groups=16"] + ([f"init={args.init}"] if args.init else [])
    tr = TDMR1Trainer(from_dict(RLConfig, apply_overrides({}, overrides)), Path("runs") / "base_ranking", quiet=True)
    t0 = time.time()
    batches = [tr.rollout() for _ in range(args.batches)]
    adv = torch.cat([ro.adv for ro in batches])
    group = torch.cat([ro.group + i * (int(ro.group.max()) + 1) for i, ro in enumerate(batches)])
    rows = []
    for level in args.levels:
        gain, neg_d = zip(*(base_scores(tr, ro, level, args.draws) for ro in batches), strict=True)
        row = {
            "level": level,
            "corr_cond_gain": round(pearson(adv, torch.cat(gain), group), 4),
            "corr_neg_d_cond": round(pearson(adv, torch.cat(neg_d), group), 4),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "world": args.world,
        "images": len(adv),
        "mean_reward": round(float(torch.cat([ro.rewards for ro in batches]).mean()), 4),
        "draws": args.draws,
        "corr_noise_std": round(1 / len(adv) ** 0.5, 3),
        "levels": rows,
        "seconds": round(time.time() - t0, 1),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, {tr.device}",
        "command": "python " + " ".join(sys.argv),
    }
    out = Path(args.out or f"benchmarks/results/base_ranking_{args.world}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
