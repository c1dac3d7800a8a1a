"""Run logging: a rich progress bar with live metrics, TensorBoard scalars/images and metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunLogger:
    """Progress bar + TensorBoard + append-only JSONL of scalars (``metrics.jsonl``)."""

    def __init__(
        self,
        run_dir: str | Path,
        total: int,
        start: int = 0,
        desc: str = "train",
        quiet: bool = False,
        tensorboard: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.console = Console(stderr=True, quiet=quiet)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.t0 = time.time()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            disable=quiet,
            transient=False,
        )
        self.task = self.progress.add_task(desc, total=total, completed=start, metrics="")
        self.progress.start()

    def step(self, step: int, scalars: dict[str, float], every: int = 1) -> None:
        """Advance the bar to ``step``; log scalars every ``every`` steps."""
        shown = "  ".join(f"{k} {v:.4g}" for k, v in scalars.items())
        self.progress.update(self.task, completed=step, metrics=shown)
        if every and step % every == 0:
            self.scalars(step, scalars)

    def scalars(self, step: int, scalars: dict[str, float]) -> None:
        record = {"step": step, "time": round(time.time() - self.t0, 2), **scalars}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)

    def image(self, tag: str, images: np.ndarray, step: int) -> None:
        if self.writer is not None and len(images):
            self.writer.add_images(tag, images, step, dataformats="NHWC")

    def info(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def close(self) -> None:
        self.progress.stop()
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
