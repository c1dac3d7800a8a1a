"""Resumable training state: modules, optimisers, step and RNG states in one atomically written file."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.errors import CheckpointError, DataError
from tdmr1.utils.io import atomic_writer
from tdmr1.utils.outputs import clean_orphan_tmp, ensure_writable_dir

STATE_FILE = "state.pt"


def rng_state(np_rng: np.random.Generator | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np_rng is not None:
        state["numpy"] = np_rng.bit_generator.state
    return state


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if np_rng is not None and "numpy" in state:
        np_rng.bit_generator.state = state["numpy"]


def save_training_state(
    run_dir: str | Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    np_rng: np.random.Generator | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/state.pt`` atomically (a crash mid-write keeps the previous state)."""
    payload = {
        "step": step,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "rng": rng_state(np_rng),
        "extra": extra or {},
    }
    path = Path(run_dir) / STATE_FILE
    with atomic_writer(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_training_state(
    run_dir: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    np_rng: np.random.Generator | None = None,
) -> tuple[int, dict[str, Any]]:
    """Restore what ``save_training_state`` wrote; returns (step, extra)."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"no training state to resume at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        for k, m in modules.items():
            m.load_state_dict(payload["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(payload["optimizers"][k])
    except (KeyError, RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot resume ({str(exc).splitlines()[0]})") from None
    restore_rng(payload["rng"], np_rng)
    return int(payload["step"]), payload.get("extra", {})


def has_training_state(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STATE_FILE).is_file()


def prepare_run_dir(run_dir: str | Path, resume: bool) -> bool:
    """Make ``run_dir`` ready for a training run; returns whether there is a state to resume.

    Called before any work: the folder must be creatable and writable (DataError otherwise); the
    temporary files of checkpoint writes a kill interrupted are removed; ``resume=False`` on a folder
    that already holds a run (``state.pt`` or ``metrics.jsonl``) is refused, so that a run never
    overwrites another's state nor appends to its metrics; and the logs of a run killed before its
    first checkpoint (metrics, TensorBoard events) are removed, since it restarts from iteration 0.
    """
    run_dir = ensure_writable_dir(run_dir, "run folder")
    clean_orphan_tmp(run_dir)
    has_state = has_training_state(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not resume and (has_state or metrics.is_file()):
        raise DataError(
            f"run folder {run_dir} already holds a run ({STATE_FILE if has_state else 'metrics.jsonl'}): "
            "drop --no-resume to continue it, or choose another --out"
        )
    if not has_state:
        metrics.unlink(missing_ok=True)
        if (run_dir / "tb").is_dir():
            shutil.rmtree(run_dir / "tb", ignore_errors=True)
    return has_state
