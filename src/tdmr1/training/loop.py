"""Pieces of a training loop that every trainer shares: readying the run folder, writing the run's config,
the time budget, and a clean stop on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from tdmr1.config import to_dict
from tdmr1.training.run_config import RunConfig
from tdmr1.training.state import prepare_run_dir
from tdmr1.training.stops import interrupted


def start_run(cfg: RunConfig, out_dir: Path, resume: bool) -> bool:
    """``out_dir`` readied for this run (``prepare_run_dir`` with the config) and the run's thread count set;
    returns whether there is a state to resume."""
    has_state = prepare_run_dir(out_dir, resume, to_dict(cfg))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return has_state


def write_config(out_dir: Path, cfg: RunConfig) -> None:
    """The run's ``config.json`` (what a resumed run is checked against)."""
    (out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))


def out_of_time(cfg: RunConfig, t0: float, log: Any, where: str, agree: Callable[[bool], bool] | None = None) -> bool:
    """Whether ``cfg.max_minutes`` have passed since ``t0`` (``agree``: the processes' joint answer), saying so
    in ``log`` with ``where`` the run stopped (``step 12``)."""
    if cfg.max_minutes is None:
        return False
    over = time.time() - t0 > 60 * cfg.max_minutes
    if agree is not None:
        over = agree(over)
    if over:
        log.info(f"time budget of {cfg.max_minutes} min reached at {where}")
    return over


@contextlib.contextmanager
def stops_cleanly(log: Any, what: str, unit: str, done: Callable[[], int], checkpoint_every: int) -> Iterator[None]:
    """The loop's block: Ctrl-C becomes an ``Interrupted`` that says where the run stopped (``done()`` units of
    it) and how much a rerun repeats; the log is closed however the block ends."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted(what, unit, done(), checkpoint_every) from None
    finally:
        log.close()
