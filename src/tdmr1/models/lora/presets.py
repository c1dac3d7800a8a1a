"""Named LoRA target presets per backbone (``embedded``, ``transformer``, ``sd3-authors``, ``zimage-authors``) and
the authors' order-only adapter files: read, write, convert to and from peft names (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.models.lora.roles import TRANSFORMER_TARGETS, UNET_TARGETS, LoraSettings

SD3_AUTHORS_TARGETS: tuple[str, ...] = tuple(
    f"attn.{name}"
    for name in ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
)
ZIMAGE_AUTHORS_TARGETS: tuple[str, ...] = tuple(f"attention.{name}" for name in ("to_q", "to_k", "to_v", "to_out.0"))

#: the key of the tensor list in the authors' EMA-wrapper files (``EMAModuleWrapper.state_dict()``)
EMA_KEY = "ema_parameters"

#: preset name -> (target modules, rank, alpha)
LORA_PRESETS: dict[str, tuple[tuple[str, ...], int, float]] = {
    "embedded": (UNET_TARGETS, 32, 64.0),
    "transformer": (TRANSFORMER_TARGETS, 32, 64.0),
    "sd3-authors": (SD3_AUTHORS_TARGETS, 32, 64.0),
    "zimage-authors": (ZIMAGE_AUTHORS_TARGETS, 32, 64.0),
}

#: SD3.5-Medium's transformer config (stabilityai/stable-diffusion-3.5-medium, transformer/config.json), for
#: layout checks on the meta device and size-true benchmarks without the weights
SD35M_TRANSFORMER_CONFIG: dict[str, Any] = dict(
    attention_head_dim=64,
    caption_projection_dim=1536,
    in_channels=16,
    joint_attention_dim=4096,
    num_attention_heads=24,
    num_layers=24,
    out_channels=16,
    patch_size=2,
    pooled_projection_dim=2048,
    pos_embed_max_size=384,
    qk_norm="rms_norm",
    sample_size=128,
    dual_attention_layers=list(range(13)),
)


def lora_settings(preset: str, rank: int | None = None, alpha: float | None = None) -> LoraSettings:
    """LoraSettings of a named preset (rank / alpha overridable)."""
    if preset not in LORA_PRESETS:
        raise ConfigError(f"unknown LoRA preset {preset!r} (known: {', '.join(LORA_PRESETS)})")
    targets, r, a = LORA_PRESETS[preset]
    return LoraSettings(rank=rank or r, alpha=alpha if alpha is not None else a, target_modules=targets)


def lora_for_backbone(lora: LoraSettings, model: nn.Module) -> LoraSettings:
    """``lora`` with the backbone's own default targets when ``lora`` still has the embedded default.

    Lets one config field (``lora``) serve every backbone: a scale-path backbone exposes
    ``default_lora_targets``; an explicit ``lora.target_modules`` in the config always wins.
    """
    targets = getattr(model, "default_lora_targets", None)
    if targets is None or tuple(lora.target_modules) != tuple(UNET_TARGETS):
        return lora
    return LoraSettings(rank=lora.rank, alpha=lora.alpha, target_modules=tuple(targets))


# ---- order-only adapter files -----------------------------------------------------------------------
def adapter_layout(denoiser: nn.Module, adapter: str) -> list[tuple[str, tuple[int, ...]]]:
    """(role-independent peft name, shape) of every parameter of ``adapter``, in parameter order.

    Names are peft's ``get_peft_model_state_dict`` keys (``...to_q.lora_A.weight``), so a converted file
    loads with :meth:`tdmr1.models.lora.roles.Roles.load_adapter_state`.
    """
    marker = f".{adapter}."
    out = []
    for name, p in denoiser.named_parameters():
        if marker in name and "lora_" in name:
            out.append((name.replace(marker, "."), tuple(p.shape)))
    if not out:
        raise ConfigError(f"the denoiser has no LoRA adapter named {adapter!r}")
    return out


def _adapter_params(denoiser: nn.Module, adapter: str) -> list[nn.Parameter]:
    marker = f".{adapter}."
    return [p for name, p in denoiser.named_parameters() if marker in name and "lora_" in name]


def read_ordered(path: str | Path) -> list[torch.Tensor]:
    """The list of tensors of an order-only ``.ckpt`` (``torch.load(weights_only=True)``: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"LoRA file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip/unsafe-global errors all mean: not a weights file
        raise CheckpointError(f"{path}: not a readable torch weights file ({str(exc).splitlines()[0]})") from None
    if isinstance(obj, dict) and EMA_KEY in obj:  # the authors' EMA wrapper: {"decay", "ema_parameters"}
        obj = obj[EMA_KEY]
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = list(obj.values())  # a state dict saved in order: its values keep parameter order
    if not isinstance(obj, list | tuple) or not all(isinstance(t, torch.Tensor) for t in obj):
        raise CheckpointError(
            f"{path}: expected a list of tensors in parameter order (or the authors' {{'decay', '{EMA_KEY}'}} "
            f"dict), got {type(obj).__name__}"
        )
    return list(obj)


def write_ordered(path: str | Path, tensors: Sequence[torch.Tensor], decay: float = 0.0) -> Path:
    """Save an order-only tensor list in the authors' EMA-wrapper form (``{"decay", "ema_parameters"}``)."""
    path = Path(path)
    torch.save({"decay": float(decay), EMA_KEY: [t.detach().cpu().contiguous() for t in tensors]}, path)
    return path


def check_ordered(tensors: Sequence[torch.Tensor], layout: list[tuple[str, tuple[int, ...]]], source: str) -> None:
    """Count and shape check of an order-only tensor list against ``layout``; CheckpointError on mismatch."""
    if len(tensors) != len(layout):
        raise CheckpointError(
            f"{source}: {len(tensors)} tensors, but the adapter of the installed backbone has {len(layout)} "
            "(wrong LoRA preset / target modules, or a file for another model)"
        )
    for i, (t, (name, shape)) in enumerate(zip(tensors, layout, strict=True)):
        if tuple(t.shape) != shape:
            raise CheckpointError(
                f"{source}: tensor {i} has shape {tuple(t.shape)} but {name} expects {shape} "
                "(wrong order, rank or model)"
            )


@torch.no_grad()
def load_ordered_adapter(denoiser: nn.Module, adapter: str, source: str | Path | Sequence[torch.Tensor]) -> int:
    """Copy an order-only tensor list (a path to a ``.ckpt`` or the list) into ``adapter``; returns the count."""
    tensors = read_ordered(source) if isinstance(source, str | Path) else list(source)
    check_ordered(tensors, adapter_layout(denoiser, adapter), str(source) if isinstance(source, str | Path) else "list")
    for p, t in zip(_adapter_params(denoiser, adapter), tensors, strict=True):
        p.copy_(t.to(dtype=p.dtype, device=p.device))
    return len(tensors)


def ordered_adapter(denoiser: nn.Module, adapter: str) -> list[torch.Tensor]:
    """``adapter``'s weights as the authors' order-only list (CPU clones)."""
    return [p.detach().cpu().clone() for p in _adapter_params(denoiser, adapter)]


def ordered_to_named(
    tensors: Sequence[torch.Tensor], layout: list[tuple[str, tuple[int, ...]]], source: str = "list"
) -> dict[str, torch.Tensor]:
    """Order-only list -> peft-named state dict (names from a reference wrap's ``layout``)."""
    check_ordered(tensors, layout, source)
    return {name: t.detach().cpu().contiguous() for t, (name, _) in zip(tensors, layout, strict=True)}


def named_to_ordered(state: dict[str, torch.Tensor], layout: list[tuple[str, tuple[int, ...]]]) -> list[torch.Tensor]:
    """peft-named state dict -> the authors' order-only list; missing or extra names fail clearly."""
    names = [name for name, _ in layout]
    missing, extra = sorted(set(names) - set(state)), sorted(set(state) - set(names))
    if missing or extra:
        raise CheckpointError(f"named LoRA does not fit the layout (missing {missing[:2]}, unexpected {extra[:2]})")
    tensors = [state[name] for name in names]
    check_ordered(tensors, layout, "named LoRA")
    return tensors


def reference_layout(denoiser_cls: type, config: dict, lora: LoraSettings) -> list[tuple[str, tuple[int, ...]]]:
    """The adapter layout of ``denoiser_cls(**config)`` with ``lora``, built on the meta device (no memory,
    no weights): how names are recovered for an order-only file of a real-size model."""
    with torch.device("meta"):  # parameters *and* buffers on meta (SD3's 384^2 pos-embed table is skipped)
        model = denoiser_cls.from_config(config) if hasattr(denoiser_cls, "from_config") else denoiser_cls(**config)
        model.add_adapter(lora.peft_config(), adapter_name="ref")
    return adapter_layout(model, "ref")


def pipeline_layout(path: str | Path, lora: LoraSettings) -> list[tuple[str, tuple[int, ...]]]:
    """Adapter layout of the transformer of a local pipeline folder, from its ``transformer/config.json``
    only (built on the meta device: no weights are read)."""
    import json

    import diffusers

    config_path = Path(path) / "transformer" / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path}: no transformer/config.json (not a diffusers pipeline folder)")
    config = json.loads(config_path.read_text())
    cls = getattr(diffusers, str(config.get("_class_name")), None)
    if cls is None:
        raise CheckpointError(f"{config_path}: unknown transformer class {config.get('_class_name')!r}")
    return reference_layout(cls, config, lora)


def convert_lora(
    src: str | Path, dst: str | Path, layout: list[tuple[str, tuple[int, ...]]], decay: float = 0.0
) -> Path:
    """Authors' order-only ``.ckpt`` <-> named peft ``.safetensors``, by the file suffixes; the names come
    from ``layout`` (:func:`pipeline_layout` or :func:`adapter_layout`). Count/shape mismatches fail. A
    ``.ckpt`` is written in the authors' EMA form with ``decay`` (the EMA that made the weights, if known)."""
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    if src.suffix == ".safetensors" and dst.suffix != ".safetensors":
        if not src.is_file():
            raise CheckpointError(f"LoRA file not found: {src}")
        write_ordered(dst, named_to_ordered(load_file(str(src)), layout), decay)
    elif src.suffix != ".safetensors" and dst.suffix == ".safetensors":
        save_file(ordered_to_named(read_ordered(src), layout, str(src)), str(dst))
    else:
        raise ConfigError("convert between an order-only .ckpt and a named .safetensors (one of each)")
    return dst
