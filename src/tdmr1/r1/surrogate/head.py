"""The explicit surrogate's reward heads r(x_tau, tau, prompt): on the frozen base's features (read by a
:class:`FeatureTap`) plus the pooled noisy image, or on the pixels alone (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FeatureTap:
    """Context manager that records the output of ``module`` during forwards inside the block."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.features: Tensor | None = None
        self._handle = None

    def _hook(self, _module: nn.Module, _inputs, output) -> None:
        self.features = output[0] if isinstance(output, tuple) else output

    def __enter__(self) -> FeatureTap:
        self.features = None
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def level_embedding(tau: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of noise levels tau [N] in [0, 1] -> [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=tau.device, dtype=torch.float32) / half)
    angles = 1000.0 * tau.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class RewardHead(nn.Module):
    """Conv head on backbone features plus the noisy image itself (pooled to the features' size), with
    FiLM from the level and the (masked-mean) prompt embedding."""

    def __init__(self, in_channels: int, text_dim: int, image_channels: int = 3, width: int = 64, level_dim: int = 64):
        super().__init__()
        self.level_dim = level_dim
        self.conv_in = nn.Conv2d(in_channels + image_channels, width, 3, padding=1)
        self.film = nn.Linear(level_dim + text_dim, 2 * width)
        self.conv_mid = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Linear(width, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.out.weight)  # r = 0 at the start: the generator's reward direction starts at zero
        nn.init.zeros_(self.out.bias)

    def forward(self, features: Tensor, x_tau: Tensor, tau: Tensor, text: tuple[Tensor, Tensor]) -> Tensor:
        hidden, mask = text
        m = mask.to(hidden.dtype).unsqueeze(-1)
        prompt = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        scale, shift = self.film(torch.cat([level_embedding(tau, self.level_dim), prompt], dim=1)).chunk(2, dim=1)
        image = nn.functional.adaptive_avg_pool2d(x_tau.float(), features.shape[-2:])
        h = self.conv_in(torch.cat([features.float(), image], dim=1))
        h = nn.functional.silu(h * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        h = nn.functional.silu(self.conv_mid(h))
        return self.out(h.mean(dim=(2, 3))).squeeze(1)


class PromptAttention(nn.Module):
    """Residual cross-attention of every image position to the prompt's token states (padding masked):
    order-aware prompt conditioning, where a masked mean forgets which word or letter came where."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, kdim=text_dim, vdim=text_dim, batch_first=True)

    def forward(self, h: Tensor, hidden: Tensor, mask: Tensor) -> Tensor:
        n, c, height, width = h.shape
        query = self.norm(h).flatten(2).transpose(1, 2)
        tokens = hidden.float()
        out, _ = self.attn(query, tokens, tokens, key_padding_mask=~mask.bool(), need_weights=False)
        return h + out.transpose(1, 2).reshape(n, c, height, width)


class PixelRewardHead(nn.Module):
    """r(x_tau, tau, prompt) read from the pixels alone (no backbone forward): four convs with coordinate
    channels (full size -> a quarter), FiLM from the level and the masked-mean prompt embedding, mean pool;
    ``prompt="attention"`` adds cross-attention to the prompt's tokens at the quarter size.
    The learner of ``benchmarks/reward_learnability.py`` made level-aware; cheap enough for many steps."""

    def __init__(
        self,
        image_channels: int,
        text_dim: int,
        size: tuple[int, int],
        width: int = 32,
        level_dim: int = 64,
        prompt: str = "mean",
    ):
        super().__init__()
        if prompt not in ("mean", "attention"):
            raise ValueError(f"prompt conditioning must be 'mean' or 'attention', got {prompt!r}")
        self.level_dim = level_dim
        self.attend = PromptAttention(2 * width, text_dim) if prompt == "attention" else None
        self.c1 = nn.Conv2d(image_channels + 2, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
        self.c3 = nn.Conv2d(width, 2 * width, 3, padding=1, stride=2)
        self.c4 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.film1 = nn.Linear(level_dim + text_dim, 2 * width)
        self.film3 = nn.Linear(level_dim + text_dim, 4 * width)
        self.out = nn.Linear(2 * width, 1)
        nn.init.zeros_(self.out.weight)  # r = 0 at the start: the generator's reward direction starts at zero
        nn.init.zeros_(self.out.bias)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy])[None], persistent=False)

    @staticmethod
    def _film(h: Tensor, params: Tensor) -> Tensor:
        scale, shift = params.chunk(2, dim=1)
        return h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def forward(self, x_tau: Tensor, tau: Tensor, text: tuple[Tensor, Tensor]) -> Tensor:
        hidden, mask = text
        m = mask.to(hidden.dtype).unsqueeze(-1)
        prompt = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        context = torch.cat([level_embedding(tau, self.level_dim), prompt.float()], dim=1)
        x = torch.cat([x_tau.float(), self.coords.expand(len(x_tau), -1, -1, -1)], dim=1)
        h = nn.functional.silu(self.c1(x))
        h = nn.functional.silu(self.c2(self._film(h, self.film1(context))))
        h = nn.functional.silu(self.c3(h))
        if self.attend is not None:
            h = self.attend(h, hidden, mask)
        h = nn.functional.silu(self.c4(self._film(h, self.film3(context))))
        return self.out(h.mean(dim=(2, 3))).squeeze(1)
