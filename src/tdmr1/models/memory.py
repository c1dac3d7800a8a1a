"""A before-the-run estimate of one process's accelerator memory for TDM-R1 on SD3.5-M or Z-Image: exact weight,
LoRA, gradient, EMA and AdamW sizes plus a formula for activations (its assumptions: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: activation bytes per (image, layer, token, hidden unit) kept for backward without / with checkpointing
ACT_BYTES = 24.0
CKPT_BYTES = 2.0
#: text encoders' parameter counts (SD3.5: CLIP-L + CLIP-G + T5-XXL encoder; Z-Image: Qwen3-4B) and the VAE's
TEXT_PARAMS = {"sd3": 123_060_480 + 694_659_840 + 4_762_310_656, "zimage": 4_022_468_096}
VAE_PARAMS = 83_819_683
#: LoRA roles held in memory (all four) and those with an optimizer (AdamW: two fp32 states per weight)
ROLES, TRAINED_ROLES = 4, 3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class MemoryEstimate:
    """Bytes per item (``rows``) and the assumptions they rest on."""

    kind: str
    settings: dict
    rows: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.rows.values()))

    def as_dict(self) -> dict:
        gib = {k: round(v / 2**30, 2) for k, v in self.rows.items()}
        return {"kind": self.kind, **self.settings, "gib": gib, "total_gib": round(self.total / 2**30, 1)}

    def line(self) -> str:
        parts = ", ".join(f"{k} {v / 2**30:.1f}" for k, v in self.rows.items())
        flags = " ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.kind} [{flags}]: ~{self.total / 2**30:.1f} GiB ({parts})"


def _transformer(kind: str):
    """(parameter count, hidden width, layers, LoRA parameters per role) of the real-size transformer."""
    from diffusers import SD3Transformer2DModel, ZImageTransformer2DModel

    from tdmr1.models.lora.presets import SD35M_TRANSFORMER_CONFIG, lora_settings

    lora = lora_settings(f"{kind}-authors").peft_config()
    with torch.device("meta"):
        if kind == "sd3":
            model = SD3Transformer2DModel(**SD35M_TRANSFORMER_CONFIG)
            cfg = model.config
            hidden, layers = cfg.num_attention_heads * cfg.attention_head_dim, cfg.num_layers
        else:
            model = ZImageTransformer2DModel()  # the class defaults are Z-Image-Turbo's config
            cfg = model.config
            hidden, layers = cfg.dim, cfg.n_layers + 2 * cfg.n_refiner_layers
        base = sum(p.numel() for p in model.parameters())
        model.add_adapter(lora, adapter_name="ref")
        per_role = sum(p.numel() for n, p in model.named_parameters() if ".ref." in n)
    return base, hidden, layers, per_role


def tokens(kind: str, resolution: int, text_tokens: int) -> int:
    """Sequence length of one image: 2x2 patches of the 8x latent plus the text tokens."""
    return (resolution // 16) ** 2 + text_tokens


def estimate_training_memory(
    kind: str,
    *,
    per_device_batch: int,
    resolution: int,
    text_tokens: int,
    gradient_checkpointing: bool,
    base_dtype: str = "fp32",
    text_dtype: str = "bf16",
    cache_prompts: bool = False,
) -> MemoryEstimate:
    """One process's memory for a TDM-R1 iteration at micro-batch ``per_device_batch`` (see the module doc)."""
    base, hidden, layers, per_role = _transformer(kind)
    seq = tokens(kind, resolution, text_tokens)
    per_layer_full = ACT_BYTES * seq * hidden
    if gradient_checkpointing:
        act = per_device_batch * (CKPT_BYTES * seq * hidden * layers + per_layer_full)
    else:
        act = per_device_batch * per_layer_full * layers
    settings = dict(
        per_device_batch=per_device_batch,
        resolution=resolution,
        gradient_checkpointing=gradient_checkpointing,
        base_dtype=base_dtype,
        cache_prompts=cache_prompts,
    )
    rows = {
        "transformer": base * DTYPE_BYTES[base_dtype],
        "lora (4 roles)": ROLES * per_role * 4,
        "grads (1 role)": per_role * 4,  # roles step one after another, grads set to None in between
        "adamw (3 roles)": TRAINED_ROLES * 2 * per_role * 4,
        "ema": per_role * 4,
        "text encoders": 0 if cache_prompts else TEXT_PARAMS[kind] * DTYPE_BYTES[text_dtype],
        "vae": VAE_PARAMS * 4,
        "activations": act,
    }
    return MemoryEstimate(kind, settings, rows)


def shipped_estimates() -> list[MemoryEstimate]:
    """The shipped configs' settings (SD3.5-M GenEval at 512 px, B = 12; Z-Image at 1024 px, B = 6) as
    shipped and with their memory switches off, for the benchmark to print before it runs."""
    out = []
    for ckpt in (False, True):
        out.append(
            estimate_training_memory(
                "sd3", per_device_batch=12, resolution=512, text_tokens=77 + 128, gradient_checkpointing=ckpt
            )
        )
    for ckpt, dtype, cache in ((False, "fp32", False), (True, "fp32", False), (True, "bf16", True)):
        out.append(
            estimate_training_memory(
                "zimage",
                per_device_batch=6,
                resolution=1024,
                text_tokens=512,
                gradient_checkpointing=ckpt,
                base_dtype=dtype,
                cache_prompts=cache,
            )
        )
    return out
