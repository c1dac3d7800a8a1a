"""Resumable training state: modules, optimisers, step and RNG states in one atomically written file, read
back with ``torch.load(weights_only=True)`` (tensors and plain containers only: a planted pickle runs no code)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.errors import CheckpointError, DataError
from tdmr1.training.run_folder import CONFIG_FILE, STATE_FILE, check_run_folder
from tdmr1.utils.io import atomic_write_text, atomic_writer
from tdmr1.utils.outputs import clean_orphan_tmp, ensure_writable_dir


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
    try:
        with atomic_writer(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as exc:  # disk full, folder gone: torch reports some as RuntimeError
        detail = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"cannot write {path} ({detail}); the previous state is intact") from None
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
        payload = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
        if not isinstance(payload, dict):
            raise TypeError(f"holds a {type(payload).__name__}, not a training state")
        for k, m in modules.items():
            m.load_state_dict(payload["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(payload["optimizers"][k])
        restore_rng(payload["rng"], np_rng)
        step, extra = int(payload["step"]), payload.get("extra", {})
    except Exception as exc:  # noqa: BLE001 - unsafe pickle, random bytes, wrong keys or shapes: all not resumable
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if "weights only load failed" in str(exc).lower():
            detail = "it holds objects other than tensors and plain data, whose loading could run code: refused"
        raise CheckpointError(f"{path}: cannot resume ({detail})") from None
    return step, extra


def has_training_state(run_dir: str | Path) -> bool:
    return (Path(run_dir) / STATE_FILE).is_file()


def prepare_run_dir(run_dir: str | Path, resume: bool, config: dict[str, Any] | None = None) -> bool:
    """Make ``run_dir`` ready for a training run; returns whether there is a state to resume.

    Called before any work: the folder must be creatable and writable (DataError otherwise); the
    temporary files of checkpoint writes a kill interrupted are removed; ``resume=False`` on a folder
    that already holds a run (``state.pt`` or ``metrics.jsonl``) is refused, so that a run never
    overwrites another's state nor appends to its metrics; and the logs of a run killed before its
    first checkpoint (metrics, TensorBoard events) are removed, since it restarts from iteration 0.
    With ``config``, a folder that is not this run's (``run_folder.check_run_folder``) is refused before
    anything in it changes, and ``config.json`` is written first, so every later file is marked as this run's.
    """
    if config is not None:
        check_run_folder(run_dir, config)
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
    if config is not None:
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=2))
    return has_state
