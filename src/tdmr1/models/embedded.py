"""The embedded text-to-image model: a pixel-space diffusers UNet (no VAE, images in [-1, 1]) that predicts the
flow velocity, and a tiny BERT text encoder; a checkpoint is ``config.json`` + ``model.safetensors``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig, BertModel

from tdmr1.config import at_least, from_dict, option, to_dict
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.models.checkpoints import resolve_checkpoint
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.utils.io import atomic_write_text, atomic_writer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class BackboneConfig:
    """Shape of the embedded denoiser and text encoder."""

    image_height: int = option(0, "image height in pixels (0 = the world's; pretraining fills it in)")
    image_width: int = option(0, "image width in pixels (0 = the world's; pretraining fills it in)")
    channels: int = option(3, "image channels")
    block_out_channels: tuple[int, ...] = option(
        (32, 64, 128), "UNet channels per resolution (full, 1/2, 1/4 size; one more entry = one more level)"
    )
    cross_attention_levels: tuple[bool, ...] = option(
        (False, False, True), "which resolutions get attention blocks with text cross-attention (coarsest last)"
    )
    cross_only_levels: tuple[bool, ...] = option(
        (),
        "which resolutions' attention blocks skip spatial self-attention (text cross-attention only: "
        "cheaper on wide canvases); () = none",
    )
    coord_channels: bool = option(
        False, "append two fixed coordinate channels (x, y in [-1, 1]) to the denoiser input (explicit position)"
    )
    layers_per_block: int = option(1, "ResNet layers per UNet block")
    norm_num_groups: int = option(16, "GroupNorm groups")
    attention_heads: int = option(8, "attention heads in the UNet")
    text_hidden: int = option(64, "text encoder width (= cross-attention dim)")
    text_layers: int = option(2, "text encoder transformer layers")
    text_heads: int = option(4, "text encoder attention heads")
    max_tokens: int = option(16, "maximum prompt length in tokens")

    def validate(self) -> None:
        at_least(self, 1, "channels layers_per_block norm_num_groups attention_heads text_layers text_heads max_tokens")
        at_least(self, 1, "text_hidden")
        if not self.block_out_channels or min(self.block_out_channels) < 1:
            raise ConfigError("block_out_channels must be a non-empty list of positive widths")
        if self.text_hidden % self.text_heads:
            raise ConfigError("text_hidden must be divisible by text_heads")
        if len(self.block_out_channels) != len(self.cross_attention_levels):
            raise ConfigError("block_out_channels and cross_attention_levels must have the same length")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError("every block_out_channels entry must be divisible by norm_num_groups")
        if self.cross_only_levels and len(self.cross_only_levels) != len(self.block_out_channels):
            raise ConfigError("cross_only_levels must be empty or as long as block_out_channels")
        if self.image_height < 0 or self.image_width < 0:
            raise ConfigError("image_height and image_width must be >= 0 (0 = the world's size)")


def build_denoiser(cfg: BackboneConfig) -> UNet2DConditionModel:
    if cfg.image_height < 1 or cfg.image_width < 1:
        raise ConfigError("backbone image_height / image_width are unset (0): take them from the world first")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attention_levels))
    return UNet2DConditionModel(
        sample_size=(cfg.image_height, cfg.image_width),
        in_channels=cfg.channels + (2 if cfg.coord_channels else 0),
        only_cross_attention=tuple(cfg.cross_only_levels) if cfg.cross_only_levels else False,
        out_channels=cfg.channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=cfg.attention_heads,
        norm_num_groups=cfg.norm_num_groups,
    )


def build_text_encoder(cfg: BackboneConfig, vocab_size: int) -> BertModel:
    bert = BertConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.text_hidden,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        intermediate_size=cfg.text_hidden * 4,
        max_position_embeddings=cfg.max_tokens,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(bert, add_pooling_layer=False)


class EmbeddedT2I(nn.Module):
    """Tokenizer + text encoder + pixel-space velocity denoiser."""

    #: FewStepSystem may run roles on merged copies of ``denoiser`` (models.lora.merged_roles): small, checked here
    merged_roles = True

    def __init__(self, cfg: BackboneConfig, tokenizer: WordTokenizer, meta: dict[str, Any] | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.meta: dict[str, Any] = dict(meta or {})
        self.denoiser = build_denoiser(cfg)
        self.text_encoder = build_text_encoder(cfg, tokenizer.vocab_size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.cfg.channels, self.cfg.image_height, self.cfg.image_width)

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Text embeddings [B, L, D] and attention mask [B, L]."""
        device = next(self.text_encoder.parameters()).device
        ids, mask = self.tokenizer.encode(prompts)
        ids, mask = ids.to(device), mask.to(device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden, mask

    def forward(self, x: torch.Tensor, s: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Velocity prediction at noisy images ``x`` [B, C, H, W] and levels ``s`` [B]."""
        hidden, mask = text
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
        out = self.denoiser(self._with_coords(x), s * 1000.0, encoder_hidden_states=hidden, encoder_attention_mask=mask)
        return out.sample

    def _with_coords(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the two coordinate channels appended when the backbone asks for them."""
        if not self.cfg.coord_channels:
            return x
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)  # [2, H, W]: x then y
        return torch.cat([x, grid.expand(b, -1, -1, -1)], dim=1)

    # ---- persistence -------------------------------------------------------------------------
    def state_for_save(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("denoiser.", self.denoiser), ("text_encoder.", self.text_encoder)):
            for k, v in module.state_dict().items():
                v = v.detach().cpu()
                out[prefix + k] = (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
        return out

    def save(self, directory: str | Path, dtype: torch.dtype | None = torch.float16) -> None:
        """Write config.json + model.safetensors into ``directory`` (atomic per file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_writer(directory / WEIGHTS_FILE) as tmp:
            save_file(self.state_for_save(dtype), str(tmp))
        config = {
            "format": "tdmr1-embedded-v1",
            "backbone": to_dict(self.cfg),
            "tokenizer": self.tokenizer.to_dict(),
            **self.meta,
        }
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> EmbeddedT2I:
        """Load a checkpoint folder (a path, or a shipped name such as ``checkpoints/shapes/teacher``);
        missing, corrupt or mismatched files raise CheckpointError."""
        directory = resolve_checkpoint(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not directory.is_dir():
            raise CheckpointError(f"checkpoint folder not found: {directory}")
        for path in (config_path, weights_path):
            if not path.is_file():
                raise CheckpointError(f"checkpoint {directory} is missing {path.name}")
        try:
            config = json.loads(config_path.read_text())
            backbone = from_dict(BackboneConfig, config["backbone"])
            tokenizer = WordTokenizer.from_dict(config["tokenizer"])
        except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"{config_path}: unreadable model config ({exc})") from None
        meta = {k: v for k, v in config.items() if k not in ("format", "backbone", "tokenizer")}
        model = cls(backbone, tokenizer, meta)
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{weights_path}: corrupt weights file ({exc})") from None
        bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
        if bad is not None:
            raise CheckpointError(f"{weights_path}: weight {bad} holds NaN or infinite values")
        model.load_flat_state(state, source=str(weights_path))
        return model.to(device)

    def load_flat_state(self, state: dict[str, torch.Tensor], source: str = "state") -> None:
        for prefix, module in (("denoiser.", self.denoiser), ("text_encoder.", self.text_encoder)):
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            own = module.state_dict()
            missing = sorted(set(own) - set(part))
            unexpected = sorted(set(part) - set(own))
            if missing or unexpected:
                raise CheckpointError(
                    f"{source}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
                )
            for k, v in part.items():
                if v.shape != own[k].shape:
                    raise CheckpointError(
                        f"{source}: {prefix}{k} has shape {tuple(v.shape)}, config expects {tuple(own[k].shape)}"
                    )
            module.load_state_dict({k: v.to(own[k].dtype) for k, v in part.items()})


def checkpoint_image_size(directory: str | Path) -> tuple[int, int]:
    """(height, width) of the images a checkpoint folder makes, read from its ``config.json`` only."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} is missing {CONFIG_FILE}")
    try:
        backbone = json.loads(path.read_text())["backbone"]
        return int(backbone["image_height"]), int(backbone["image_width"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable model config ({exc})") from None
