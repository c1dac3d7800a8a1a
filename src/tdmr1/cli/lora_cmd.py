"""`tdmr1 convert-lora`: a LoRA between the authors' order-only .ckpt and named peft .safetensors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tdmr1.utils.outputs import check_writable_file

console = Console()


def convert_lora_command(
    src: Path = typer.Argument(..., help="input: the authors' order-only .ckpt, or a named .safetensors"),
    dst: Path = typer.Argument(..., help="output: a named .safetensors, or an order-only .ckpt"),
    model: Path | None = typer.Option(
        None, help="local diffusers pipeline folder whose transformer names the tensors (only its config is read)"
    ),
    backbone: str | None = typer.Option(None, help="sd3 or zimage: the authors' LoRA layout (default: from --model)"),
    rank: int | None = typer.Option(None, min=1, help="LoRA rank (default: a named input's own, else the preset's 32)"),
) -> None:
    """Convert a LoRA between the authors' order-only .ckpt and named peft .safetensors (by file suffix).

    The names come from a reference wrap of the installed diffusers' transformer built from
    --model's transformer/config.json on the meta device (no weights read); count and every shape are checked.
    """
    from tdmr1.errors import ConfigError
    from tdmr1.models.lora.presets import convert_lora, lora_settings, pipeline_layout
    from tdmr1.models.registry import detect_kind

    if model is None:
        raise ConfigError("convert-lora needs --model PATH (a local pipeline folder; only its configs are read)")
    kind = detect_kind(model)
    if kind == "embedded":
        raise ConfigError(f"{model} is an embedded checkpoint: convert-lora is for diffusers pipelines (sd3, zimage)")
    if backbone is not None and backbone != kind:
        raise ConfigError(f"{model} holds a {kind} pipeline, but --backbone is {backbone}")
    check_writable_file(dst, "output file")
    if rank is None and src.suffix == ".safetensors" and src.is_file():  # a named file says its rank
        from safetensors import safe_open

        with safe_open(str(src), "pt") as f:
            a_key = next((k for k in f.keys() if ".lora_A." in k), None)  # noqa: SIM118 - safe_open has no __iter__
            rank = f.get_slice(a_key).get_shape()[0] if a_key else None
    layout = pipeline_layout(model, lora_settings(f"{kind}-authors", rank=rank))
    convert_lora(src, dst, layout, decay=_export_ema_decay(src))
    console.print(f"{len(layout)} tensors ({kind}-authors layout) {src} -> {dst}")


def _export_ema_decay(src: Path) -> float:
    """The generator EMA decay of a `tdmr1 train` export next to ``src`` (its config.json), else 0.0."""
    import json

    config = src.parent / "config.json"
    try:
        value = json.loads(config.read_text()).get("ema_decay", 0.0) if config.is_file() else 0.0
        return float(value)
    except (ValueError, TypeError, AttributeError):
        return 0.0
