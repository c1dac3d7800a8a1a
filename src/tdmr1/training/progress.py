"""Run logging: a rich progress bar with live metrics, TensorBoard scalars/images and metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

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

from tdmr1.utils.io import METRICS_FILE, atomic_write_text, read_jsonl


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
        self.metrics_path = self.run_dir / METRICS_FILE
        self.t0 = time.time()
        self.writer = None
        trim_metrics(self.run_dir, start)  # rows a killed run logged after its last checkpoint
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run drops the events logged after its checkpoint (they are logged again)
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=start + 1 if start else None)
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


class QuietLog:
    """What a process other than rank 0 logs: nothing (``RunLogger``'s methods, doing nothing)."""

    def step(self, *args: Any, **kwargs: Any) -> None:
        pass

    scalars = image = info = close = step


def trim_metrics(run_dir: str | Path, step: int) -> int:
    """Keep only the ``metrics.jsonl`` rows of steps <= ``step`` (none when ``step`` is 0), so that a run
    resumed from its checkpoint at ``step`` never logs an iteration twice; returns the rows dropped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    keep = []
    for line in lines:
        try:
            row_step = json.loads(line).get("step")
        except (json.JSONDecodeError, AttributeError):
            continue  # a row cut short by a kill mid-write
        if step and isinstance(row_step, int) and row_step <= step:
            keep.append(line)
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(f"{line}\n" for line in keep))
    return len(lines) - len(keep)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every record of a run folder's ``metrics.jsonl`` ([] before the first one)."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)
