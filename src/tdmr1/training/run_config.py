"""The options every training run has (seed, threads, device, time budget, logging cadence), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from tdmr1.config import option


@dataclass
class RunConfig:
    """Where a run runs, for how long, and how often it logs. A trainer's config is ``class XConfig(RunConfig,
    XSettings)``: dataclass fields are collected from the last base to the first, so these follow the trainer's
    own settings in ``to_dict`` and ``tdmr1 config show``; it then sets its own ``log_every`` default (the field
    keeps its place) and its saving cadences (``checkpoint_every``, ...)."""

    seed: int = option(0, "seed of every random draw (data, noise, init)")
    threads: int = option(0, "torch CPU threads (0 = torch default)")
    device: str = option("auto", "auto (CUDA when present), cpu or cuda[:i]")
    max_minutes: float | None = option(None, "stop (cleanly, with a checkpoint) after this wall time")
    log_every: int = option(10, "TensorBoard scalars every N iterations")
