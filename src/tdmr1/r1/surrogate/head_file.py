"""A reward head's weights as a file, so a warmed-up explicit surrogate can start other runs (the warm-up's
labelled rollouts and head steps are the costly part of a CPU run): ``surrogate_init``."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from tdmr1.errors import CheckpointError
from tdmr1.models.checkpoints import resolve_checkpoint
from tdmr1.r1.config import RLConfig
from tdmr1.utils.io import atomic_writer

#: The file a run writes after its surrogate warm-up, and the name looked for in a folder.
WARMUP_FILE = "surrogate_warmup.safetensors"
#: The head fields that must match for the weights to mean the same thing.
SHAPE_KEYS = ("explicit_input", "explicit_prompt", "head_width", "t_min_surrogate", "t_max_surrogate")
#: What a file written before a key existed was made with.
SHAPE_DEFAULTS = {"explicit_prompt": "mean"}


def save_head(head, path: Path, cfg: RLConfig, extra: dict | None = None) -> Path:
    """Write ``head``'s weights with the settings that shaped them (``SHAPE_KEYS``, world, init) as metadata."""
    meta = {k: getattr(cfg, k) for k in SHAPE_KEYS} | {"world": cfg.world, "init": cfg.init} | (extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
    with atomic_writer(path) as tmp:
        save_file(state, str(tmp), metadata={"tdmr1": json.dumps(meta)})
    return path


def load_head(head, source: str | Path, cfg: RLConfig) -> dict:
    """Load a head file (or a folder holding ``WARMUP_FILE``) into ``head``; CheckpointError when it is missing,
    unreadable, or was made for another head shape or world. Returns its metadata."""
    try:
        path = resolve_checkpoint(source)
    except CheckpointError as exc:
        raise CheckpointError(f"surrogate_init: {exc}") from None
    if path.is_dir():
        path = path / WARMUP_FILE
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("tdmr1", "{}"))
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"surrogate_init {path}: not a reward head file ({exc})") from None
    wanted = {k: getattr(cfg, k) for k in SHAPE_KEYS} | {"world": cfg.world}
    made = SHAPE_DEFAULTS | meta
    differ = {k: (made.get(k), v) for k, v in wanted.items() if made.get(k) != v}
    if differ:
        said = ", ".join(f"{k} {a!r} (this run: {b!r})" for k, (a, b) in differ.items())
        raise CheckpointError(f"surrogate_init {path} was made with other settings: {said}")
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"surrogate_init {path}: weights do not fit this head ({str(exc)[:160]})") from None
    return meta
