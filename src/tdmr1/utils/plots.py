"""Training curves as PNG (matplotlib, headless): reward and validation accuracy against iteration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tdmr1.utils.io import METRICS_FILE, atomic_writer, read_jsonl  # noqa: E402


def plot_reward_curve(run_dir: str | Path, out_path: str | Path) -> Path | None:
    """Rollout reward (and validation overall, if logged) against iteration, with a second panel for the
    surrogate's ranking of fresh batches (``sur_rank``) when the run logged it; None if nothing logged."""
    rows = read_jsonl(Path(run_dir) / METRICS_FILE)
    train = [(r["step"], r["reward"]) for r in rows if "reward" in r]
    val = [(r["step"], r["val/overall"]) for r in rows if "val/overall" in r]
    rank = [(r["step"], r["sur_rank"]) for r in rows if "sur_rank" in r]
    if not train and not val:
        return None
    panels = 2 if rank else 1
    fig, axes = plt.subplots(panels, 1, figsize=(6, 3.5 * panels), dpi=120, sharex=True, squeeze=False)
    ax = axes[0, 0]
    if train:
        ax.plot(*zip(*train, strict=True), label="rollout reward (partial credit)", alpha=0.8)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation accuracy (4 NFE)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if rank:
        low = axes[1, 0]
        low.plot(*zip(*rank, strict=True), "o-", color="tab:green")
        low.axhline(0.0, color="grey", lw=0.8)
        low.set_ylabel("surrogate ranking\n(corr. with advantages)")
        low.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("iteration")
    fig.tight_layout()
    out_path = Path(out_path)
    with atomic_writer(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_path
