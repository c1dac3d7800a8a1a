"""Resumable training state: modules, optimisers, step and RNG states in one atomically written file."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.errors import CheckpointError
from tdmr1.utils.io import atomic_writer

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
