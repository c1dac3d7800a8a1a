"""Whose run folder is this: a training run continues only its own folder (its ``config.json`` matches the
current config, run-control fields aside) and never writes into another run's or a folder of other files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tdmr1.errors import DataError
from tdmr1.utils.outputs import TMP_SUFFIX

CONFIG_FILE = "config.json"
STATE_FILE = "state.pt"

#: Fields a resumed run may change: how long it runs, how often it logs and saves, where it runs.
RUN_CONTROL = frozenset(
    {
        "iterations",
        "steps",
        "max_minutes",
        "threads",
        "device",
        "log_every",
        "checkpoint_every",
        "snapshot_every",
        "sample_every",
        "val_every",
        "reward_timeout_s",
        "skip_bad_reward_batches",
        "max_skipped_batches",
    }
)

#: What a trainer may create in its folder before it writes ``config.json`` (the reward's own databases).
EARLY_FILES = ("likes.sqlite", "reward_cache.sqlite")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: value}


def config_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first setting (dotted key) that differs between two run configs, run-control fields aside; None
    when they agree. Keys only one side has (a field added or removed by an upgrade) are not compared."""
    old, new = _flat(stored), _flat(json.loads(json.dumps(current)))
    for key in sorted(old.keys() & new.keys()):
        if key.split(".", 1)[0] in RUN_CONTROL:
            continue
        if old[key] != new[key]:
            return f"{key}: {old[key]!r} there, {new[key]!r} now"
    return None


def _early(name: str) -> bool:
    return name.startswith(EARLY_FILES) or (name.startswith(".") and name.endswith(TMP_SUFFIX))


def check_run_folder(run_dir: str | Path, config: dict[str, Any]) -> None:
    """DataError unless ``run_dir`` is missing, empty, or holds this run (a ``config.json`` equal to ``config``
    but for run-control fields, or a ``state.pt`` without config, saved through the Python API). Reads only:
    nothing in the folder changes."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        if (run_dir / STATE_FILE).is_file():  # saved through the API without a config: resuming checks every shape
            return
        others = sorted(p.name for p in run_dir.iterdir() if not _early(p.name))
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise DataError(
                f"run folder {run_dir} already holds a run or other files ({shown}) but no {CONFIG_FILE}: "
                "it is not this run's folder; choose another --out"
            )
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        stored = None
    if not isinstance(stored, dict):
        raise DataError(f"run folder {run_dir}: {CONFIG_FILE} is not a run config; choose another --out")
    diff = config_difference(stored, config)
    if diff is not None:
        raise DataError(
            f"run folder {run_dir} holds a run with another config ({diff}): only iterations, time budget, "
            "logging and device may change on resume; choose another --out"
        )
