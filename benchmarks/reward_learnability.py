"""How many labelled images does a learned reward need to rank a world's reward? A ceiling for surrogates.

A small CNN reward model (the explicit surrogate's ``PixelRewardHead``) is trained on N labelled student
rollouts of the trainer's own prompt stream (tag-balanced by default) and scored on held-out rollouts by
the trainer's ranking measure, overall and per tag; ``--tau`` trains and scores it on noisy states
instead of clean images, ``--control brightness`` swaps in a pixel-simple reward. Details: docs/LEARNABILITY.md.

    python benchmarks/reward_learnability.py --batches 288 --heldout 32 --sizes 4096 16384 --loss mse --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from tdmr1.config import apply_overrides, from_dict
from tdmr1.devices import resolve_device
from tdmr1.r1.config import RLConfig
from tdmr1.r1.diagnostics import pearson
from tdmr1.r1.losses import explicit_surrogate_loss, group_advantages, group_mean
from tdmr1.r1.surrogate.head import PixelRewardHead
from tdmr1.r1.trainer import TDMR1Trainer
from tdmr1.worlds import get_world

DEFAULT_OUT = "benchmarks/results/reward_learnability_shapes.json"
Batch = dict[str, Tensor]


def noisy(b: Batch, tau_range: tuple[float, float], gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(x_tau, tau): the batch's clean images diffused to levels uniform in ``tau_range`` (per image)."""
    lo, hi = tau_range
    tau = lo + (hi - lo) * torch.rand(len(b["x"]), generator=gen, device=b["x"].device)
    xi = torch.randn(b["x"].shape, generator=gen, device=b["x"].device)
    t = tau.view(-1, 1, 1, 1)
    return (1 - t) * b["x"] + t * xi, tau


def loss_of(kind: str, r: Tensor, b: Batch) -> Tensor:
    if kind == "bt":
        return explicit_surrogate_loss(r, b["adv"], b["group"], beta=1.0)
    target = b["rewards"] - group_mean(b["rewards"], b["group"])
    return (r - group_mean(r, b["group"]) - target).pow(2).mean()


def joined(batches: list[Batch]) -> Batch:
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


@torch.no_grad()
def ranking(model: PixelRewardHead, batches: list[Batch], tau_range: tuple[float, float], draws: int = 4) -> dict:
    """Within-prompt Pearson of the advantages with r, overall and per tag (r averaged over ``draws`` noisy
    copies when ``tau_range`` is not (0, 0))."""
    gen = torch.Generator(device=batches[0]["x"].device).manual_seed(1234)
    b = joined(batches)
    n = 1 if tau_range == (0.0, 0.0) else draws
    r = sum(torch.cat([model(*noisy(x, tau_range, gen), (x["hidden"], x["mask"])) for x in batches]) for _ in range(n))
    out = {"all": round(pearson(b["adv"], r, b["group"]), 4)}
    for tag in sorted(set(b["tag"].tolist())):
        rows = b["tag"] == tag
        out[TAG_NAMES[tag] if tag < len(TAG_NAMES) else str(tag)] = round(
            pearson(b["adv"][rows], r[rows], b["group"][rows]), 4
        )
    return out


def train(
    train_set: list[Batch],
    held: list[Batch],
    kind: str,
    steps: int,
    lr: float,
    seed: int,
    width: int,
    tau_range: tuple[float, float] = (0.0, 0.0),
    batch_images: int = 128,
    evals: int = 10,
    prompt: str = "mean",
) -> dict:
    """``steps`` AdamW steps of ``batch_images`` random training images each; held-out ranking ``evals`` times."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=train_set[0]["x"].device).manual_seed(seed)
    data = joined(train_set)
    x = data["x"]
    model = PixelRewardHead(x.shape[1], data["hidden"].shape[-1], tuple(x.shape[-2:]), width, prompt=prompt)
    model = model.to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    groups = torch.unique(data["group"])
    per_group = len(x) // len(groups)
    history = []
    for step in range(1, steps + 1):
        pick = groups[
            torch.randperm(len(groups), generator=gen, device=groups.device)[: max(1, batch_images // per_group)]
        ]
        rows = torch.isin(data["group"], pick)
        b = {k: v[rows] for k, v in data.items()}
        x_tau, tau = noisy(b, tau_range, gen)
        loss = loss_of(kind, model(x_tau, tau, (b["hidden"], b["mask"])), b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, steps // evals) == 0 or step == steps:
            history.append(
                {"step": step, "passes": round(step * batch_images / len(x), 1), **ranking(model, held, tau_range)}
            )
            print(json.dumps({"kind": kind, "images": len(x), **history[-1]}), flush=True)
    return {"steps": steps, "batch_images": batch_images, "history": history}


def brightness_control(batches: list[Batch]) -> list[Batch]:
    """The same images and prompts with the mean brightness as the reward (advantages as the trainer's)."""
    out = []
    for b in batches:
        rewards = b["x"].mean(dim=(1, 2, 3))
        out.append({**b, "rewards": rewards, "adv": group_advantages(rewards, b["group"])})
    return out


TAG_NAMES: list[str] = []


def rollouts(args: argparse.Namespace) -> list[Batch]:
    """Clean student rollouts with prompt embeddings, tags and rewards, drawn once per (world, init, stream,
    seed, n) and cached under runs/reward_learnability/."""
    overrides = ["val_every=0", "prompts_per_iteration=8", "group_size=8", f"seed={args.seed}", f"device={args.device}"]
    cfg = from_dict(RLConfig, apply_overrides({}, overrides + args.set))
    n = args.batches + args.heldout
    name = f"{cfg.world}-{Path(cfg.init).name}-{cfg.prompt_stream}-seed{cfg.seed}-{n}.pt"
    path = Path("runs/reward_learnability") / name
    if path.is_file():
        return torch.load(path, weights_only=True)
    tr = TDMR1Trainer(cfg, Path("runs/reward_learnability/trainer"), quiet=True)
    out = []
    for i in range(n):
        with torch.no_grad():
            ro = tr.rollout(with_predictions=False)
        tag = torch.tensor([TAG_NAMES.index(t) for t in ro.tags]).repeat_interleave(cfg.group_size)
        group = ro.group + i * cfg.prompts_per_iteration  # distinct across batches
        batch = {"x": ro.states[-1], "hidden": ro.cond[0], "mask": ro.cond[1], "group": group, "tag": tag}
        out.append({k: v.cpu() for k, v in {**batch, "rewards": ro.rewards, "adv": ro.adv}.items()})
        if (i + 1) % 20 == 0 or i + 1 == n:
            print(f"rollout batch {i + 1}/{n}", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def batches_of_run_state(path: Path, tags: list[str]) -> list[Batch]:
    """The labelled batches a run keeps in its replay buffer (e.g. its surrogate warm-up), clean images only."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = []
    for i, ro in enumerate(state["modules"]["replay"]["rollouts"]):
        per_group = len(ro["group"]) // len(ro["tags"])
        tag = torch.tensor([tags.index(t) for t in ro["tags"]]).repeat_interleave(per_group)
        group = ro["group"] + i * len(ro["tags"])
        out.append(
            {"x": ro["states"][-1], "hidden": ro["cond"][0], "mask": ro["cond"][1], "group": group, "tag": tag}
            | {"rewards": ro["rewards"], "adv": ro["adv"]}
        )
    return out


def table(results: dict) -> str:
    """Markdown: each (setting, loss, images) row's final held-out ranking per tag and its best overall along
    the run (``best all``), mean +- sd over seeds."""
    rows: dict[str, list[dict]] = {}
    for key, run in results.items():
        if "-seed" in key and "final_heldout" in run:
            rows.setdefault(key.rsplit("-seed", 1)[0], []).append(
                {**run["final_heldout"], "best all": run.get("best_heldout", float("nan"))}
            )
    keys = {t for runs in rows.values() for r in runs for t in r}
    tags = sorted(keys - {"step", "passes", "all", "best all"})
    lines = [
        "| run | seeds | passes | all | best all | " + " | ".join(tags) + " |",
        "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in tags) + " |",
    ]
    for name, runs in rows.items():

        def cell(t: str, runs: list[dict] = runs) -> str:
            v = torch.tensor([r[t] for r in runs if t in r], dtype=torch.float64)
            if len(v) == 0:
                return "-"
            return f"{v.mean():.3f}" + (f" +- {v.std():.3f}" if len(v) > 1 else "")

        passes = runs[0].get("passes", "-")
        cells = [cell(t) for t in ("all", "best all", *tags)]
        lines.append(f"| {name} | {len(runs)} | {passes} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=288, help="training rollout batches of 8 prompts x 8 images")
    ap.add_argument("--heldout", type=int, default=32, help="held-out rollout batches")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 18432], help="training images per run")
    ap.add_argument("--loss", nargs="+", default=["mse"], choices=["bt", "mse"])
    ap.add_argument("--steps", type=int, default=2500, help="optimizer steps per run")
    ap.add_argument("--batch-images", type=int, default=128, help="images per optimizer step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=32, help="reward model width")
    ap.add_argument("--prompt", nargs="+", default=["mean"], choices=["mean", "attention"], help="prompt conditioning")
    ap.add_argument("--tau", type=float, nargs=2, default=[0.0, 0.0], help="noise levels of training and scoring")
    ap.add_argument("--seed", type=int, default=3, help="rollout seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="learner seeds")
    ap.add_argument("--set", action="append", default=[], help="RLConfig override KEY=VALUE (world, init, stream)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i]")
    ap.add_argument("--control", choices=["brightness"], default=None, help="replace the reward by a control")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--from-state", type=Path, default=None, help="use a run's stored labelled batches (state.pt)")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out's results and stop")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    world = next((kv.split("=", 1)[1] for kv in args.set if kv.startswith("world=")), "shapes")
    TAG_NAMES[:] = sorted(get_world(world).tags)  # a tag's index in the stored batches
    if args.from_state:
        stored = batches_of_run_state(args.from_state, TAG_NAMES)
        args.batches = min(args.batches, len(stored) - args.heldout)
        stored = stored[: args.batches + args.heldout]
    else:
        stored = rollouts(args)
    data = [{k: v.to(device) for k, v in b.items()} for b in stored]
    if args.control:
        data = brightness_control(data)
    train_all, held = data[: args.batches], data[args.batches :]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    tau = (float(args.tau[0]), float(args.tau[1]))
    stream = next((s.split("=", 1)[1] for s in args.set if s.startswith("prompt_stream=")), "balanced")
    runs = [(p, k, s, seed) for p in args.prompt for k in args.loss for s in args.sizes for seed in args.seeds]
    for prompt, kind, size, seed in runs:
        n_batches = min(len(train_all), max(1, size // 64))
        t0 = time.time()
        run = train(
            train_all[:n_batches],
            held,
            kind,
            args.steps,
            args.lr,
            seed,
            args.width,
            tau,
            args.batch_images,
            prompt=prompt,
        )
        final = run["history"][-1]
        run.update(
            images=64 * n_batches,
            heldout_images=64 * len(held),
            stream=stream,
            tau=list(tau),
            best_heldout=max(h["all"] for h in run["history"]),
            final_heldout=final,
            seconds=round(time.time() - t0, 1),
            machine=f"{platform.machine()}, {args.threads} thread(s), {device}",
            command="python " + " ".join(sys.argv),
        )
        prefix = f"{args.control + '-' if args.control else ''}{stream}-tau{tau[0]:g}-{tau[1]:g}-"
        prefix += "" if prompt == "mean" else f"{prompt}-"
        results[f"{prefix}{kind}-{64 * n_batches}-seed{seed}"] = run
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
