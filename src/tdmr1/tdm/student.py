"""Export and import of few-step students: merged weights (loadable like any model) + the LoRA adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from tdmr1.config import to_dict
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError
from tdmr1.models.checkpoints import ADAPTER_FILE, checkpoint_reference, resolve_checkpoint
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.tdm.system import FewStepSystem
from tdmr1.training.ema import TensorEMA
from tdmr1.training.rng import global_rng_untouched
from tdmr1.utils.io import atomic_writer


def export_student(
    system: FewStepSystem,
    ema: TensorEMA | None,
    directory: str | Path,
    teacher: str,
    sampling: SamplingConfig,
    meta: dict[str, Any],
    role: str = "generator",
) -> Path:
    """Save base + ``role`` (EMA weights if given) merged, plus the adapter, into ``directory``."""
    directory = Path(directory)
    if ema is not None:
        ema.swap()
    try:
        merged = system.roles.merged_state_dict(role)
        adapter = system.roles.adapter_state(role)
    finally:
        if ema is not None:
            ema.swap()
    model: EmbeddedT2I = system.model
    with global_rng_untouched():  # building the model draws init weights: never from the training's RNG
        plain = EmbeddedT2I(
            model.cfg,
            model.tokenizer,
            {
                **{k: v for k, v in model.meta.items() if k not in ("sampling",)},
                "sampling": to_dict(sampling),
                "teacher": _teacher_reference(teacher, directory),
                "lora": to_dict(system.roles.lora[role]),
                **meta,
            },
        )
    plain.denoiser.load_state_dict(merged)
    plain.text_encoder.load_state_dict(model.text_encoder.state_dict())
    plain.save(directory)
    with atomic_writer(directory / ADAPTER_FILE) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, str(tmp))
    return directory


def _teacher_reference(teacher: str | Path, directory: Path) -> str:
    """The teacher as the student records it: relative to the student's folder where sensible."""
    try:
        return checkpoint_reference(resolve_checkpoint(teacher), directory)
    except CheckpointError:  # not there (any more): keep what was given
        return str(teacher)


def _student_config(path: Path) -> dict[str, Any]:
    """A student's ``config.json``: an object whose ``sampling`` names its steps and shift (CheckpointError,
    naming this file, otherwise)."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: unreadable student config ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: a student config must be a JSON object, not a {type(config).__name__}")
    sampling = config.get("sampling")
    steps = sampling.get("steps") if isinstance(sampling, dict) else None
    shift = sampling.get("shift") if isinstance(sampling, dict) else None
    numbers = isinstance(steps, int) and not isinstance(steps, bool) and isinstance(shift, int | float)
    if not numbers or steps < 1 or not shift > 0 or isinstance(shift, bool):
        raise CheckpointError(f"{path}: 'sampling' must be an object with integer steps >= 1 and a shift > 0")
    if not isinstance(config.get("teacher", ""), str):
        raise CheckpointError(f"{path}: 'teacher' must be a path")
    return config


def load_student_adapter(directory: str | Path) -> tuple[dict, dict[str, Any]]:
    """(adapter weights, model config) of an exported student; CheckpointError when it has none.

    ``directory`` may be a shipped name (``checkpoints/shapes/tdm4``); the config's ``teacher`` comes back
    as an absolute path, resolved against the student's folder (see ``resolve_checkpoint``).
    """
    directory = resolve_checkpoint(directory)
    path = directory / ADAPTER_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {ADAPTER_FILE}: not an exported few-step student")
    config = _student_config(directory / "config.json")
    try:
        adapter = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt checkpoint
        raise CheckpointError(f"{path}: unreadable adapter ({exc})") from None
    if config.get("teacher"):
        try:
            config["teacher"] = str(resolve_checkpoint(config["teacher"], relative_to=directory))
        except CheckpointError:  # loading it names the path; `--set teacher=...` overrides it
            config["teacher"] = str(directory / config["teacher"])
    return adapter, config
