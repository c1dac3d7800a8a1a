"""How many labelled images does a learned reward need to rank a world's reward? A ceiling for surrogates.

TDM-R1's surrogate must learn, from the black-box reward's scores, to rank images of the same prompt.
This measures the most favourable version of that task: a small CNN reward model (coordinate channels,
FiLM from the student's prompt embedding) that sees the *clean* final images (no noise, no backbone to
read through), trained on N labelled student rollouts and scored on held-out rollouts by the trainer's
ranking measure (within-prompt Pearson correlation with the advantages). If this model cannot rank from
N images, neither surrogate can rank from N images in an RL run.

A control (``--control brightness``) swaps the world's reward for the images' mean brightness, a reward
any learner ranks from a few hundred images: it shows that a low number is the reward's, not the learner's.

Two training losses: ``bt`` (the group Bradley-Terry loss of the explicit surrogate) and ``mse``
(regression of the within-prompt centred reward, which does not saturate). Each training size gets
about the same number of optimizer steps (``--steps``), so sizes differ only in distinct images.

Usage::

    python benchmarks/reward_learnability.py --batches 200 --heldout 20 --sizes 1024 4096 11520 --loss bt mse

Rollouts (clean images, prompt embeddings, rewards) are cached under runs/reward_learnability/.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from tdmr1.config import apply_overrides, from_dict
from tdmr1.devices import resolve_device
from tdmr1.ranking import pearson
from tdmr1.rl_losses import explicit_surrogate_loss, group_advantages, group_mean
from tdmr1.training.rl import TDMR1Trainer
from tdmr1.training.rl_config import RLConfig

DEFAULT_OUT = "benchmarks/results/reward_learnability_shapes.json"
Batch = dict[str, Tensor]


class CleanRewardModel(nn.Module):
    """r(x0, prompt): four convs (32 -> 8 px), FiLM from the masked-mean prompt embedding, mean pool."""

    def __init__(self, channels: int, text_dim: int, size: tuple[int, int], width: int = 32):
        super().__init__()
        self.c1 = nn.Conv2d(channels + 2, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
        self.c3 = nn.Conv2d(width, 2 * width, 3, padding=1, stride=2)
        self.c4 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.film1, self.film3 = nn.Linear(text_dim, 2 * width), nn.Linear(text_dim, 4 * width)
        self.out = nn.Linear(2 * width, 1)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy])[None])

    @staticmethod
    def _film(h: Tensor, params: Tensor) -> Tensor:
        scale, shift = params.chunk(2, dim=1)
        return h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def forward(self, x: Tensor, hidden: Tensor, mask: Tensor) -> Tensor:
        m = mask.float().unsqueeze(-1)
        prompt = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        h = nn.functional.silu(self.c1(torch.cat([x, self.coords.expand(len(x), -1, -1, -1)], dim=1)))
        h = nn.functional.silu(self.c2(self._film(h, self.film1(prompt))))
        h = nn.functional.silu(self.c3(h))
        h = nn.functional.silu(self.c4(self._film(h, self.film3(prompt))))
        return self.out(h.mean(dim=(2, 3))).squeeze(1)


def loss_of(kind: str, r: Tensor, b: Batch) -> Tensor:
    if kind == "bt":
        return explicit_surrogate_loss(r, b["adv"], b["group"], beta=1.0)
    target = b["rewards"] - group_mean(b["rewards"], b["group"])
    return (r - group_mean(r, b["group"]) - target).pow(2).mean()


def joined(batches: list[Batch]) -> Batch:
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


@torch.no_grad()
def ranking(model: CleanRewardModel, batches: list[Batch]) -> float:
    b = joined(batches)
    r = torch.cat([model(x["x"], x["hidden"], x["mask"]) for x in batches])
    return pearson(b["adv"], r, b["group"])


def train(train_set: list[Batch], held: list[Batch], kind: str, steps: int, lr: float, seed: int, width: int) -> dict:
    torch.manual_seed(seed)
    x = train_set[0]["x"]
    model = CleanRewardModel(x.shape[1], train_set[0]["hidden"].shape[-1], tuple(x.shape[-2:]), width).to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    epochs = max(1, round(steps / len(train_set)))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        for i in torch.randperm(len(train_set)).tolist():
            b = train_set[i]
            loss = loss_of(kind, model(b["x"], b["hidden"], b["mask"]), b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        history.append(
            {
                "epoch": epoch,
                "heldout": round(ranking(model, held), 4),
                "train": round(ranking(model, train_set[:16]), 4),
            }
        )
        print(json.dumps({"kind": kind, "images": 64 * len(train_set), **history[-1]}), flush=True)
    return {"epochs": epochs, "steps": epochs * len(train_set), "history": history}


def brightness_control(batches: list[Batch]) -> list[Batch]:
    """The same images and prompts with the mean brightness as the reward (advantages as the trainer's)."""
    out = []
    for b in batches:
        rewards = b["x"].mean(dim=(1, 2, 3))
        out.append({**b, "rewards": rewards, "adv": group_advantages(rewards, b["group"])})
    return out


def rollouts(args: argparse.Namespace) -> list[Batch]:
    """Clean student rollouts with prompt embeddings and rewards, drawn once per (world, init, seed, n)."""
    overrides = ["val_every=0", "prompts_per_iteration=8", "group_size=8", f"seed={args.seed}", f"device={args.device}"]
    overrides += args.set
    cfg = from_dict(RLConfig, apply_overrides({}, overrides))
    n = args.batches + args.heldout
    path = Path("runs/reward_learnability") / f"{cfg.world}-{Path(cfg.init).name}-seed{cfg.seed}-{n}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    tr = TDMR1Trainer(cfg, Path("runs/reward_learnability/trainer"), quiet=True)
    out = []
    for i in range(n):
        ro = tr.rollout()
        group = ro.group + i * cfg.prompts_per_iteration  # distinct across batches
        batch = {"x": ro.states[-1], "hidden": ro.cond[0], "mask": ro.cond[1], "group": group}
        out.append({k: v.cpu() for k, v in {**batch, "rewards": ro.rewards, "adv": ro.adv}.items()})
        if (i + 1) % 20 == 0 or i + 1 == n:
            print(f"rollout batch {i + 1}/{n}", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=200, help="training rollout batches of 8 prompts x 8 images")
    ap.add_argument("--heldout", type=int, default=20, help="held-out rollout batches")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 12800], help="training images per run")
    ap.add_argument("--loss", nargs="+", default=["bt", "mse"], choices=["bt", "mse"])
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps per run (rounded to whole epochs)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=32, help="reward model width")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="RLConfig override KEY=VALUE (world, init)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]")
    ap.add_argument("--control", choices=["brightness"], default=None, help="replace the reward by a control")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    data = [{k: v.to(device) for k, v in b.items()} for b in rollouts(args)]
    if args.control:
        data = brightness_control(data)
    train_all, held = data[: args.batches], data[args.batches :]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for kind in args.loss:
        for size in args.sizes:
            n_batches = min(len(train_all), max(1, size // 64))
            t0 = time.time()
            run = train(train_all[:n_batches], held, kind, args.steps, args.lr, args.seed, args.width)
            run.update(
                images=64 * n_batches,
                heldout_images=64 * len(held),
                best_heldout=max(h["heldout"] for h in run["history"]),
                final_heldout=run["history"][-1]["heldout"],
                seconds=round(time.time() - t0, 1),
                machine=f"{platform.machine()}, 1 thread, {device}",
                command="python " + " ".join(sys.argv),
            )
            results[f"{args.control + '-' if args.control else ''}{kind}-{64 * n_batches}"] = run
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
