"""Text-to-image generation with the embedded model: per-image seeded noise, CFG, any solver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tdmr1.config import option
from tdmr1.errors import ConfigError
from tdmr1.flow import flow_sigmas, uniform_sigmas
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.sampling import Trajectory, sample


@dataclass
class SamplingConfig:
    """How to sample: steps, guidance, solver and schedule."""

    steps: int = option(40, "sampling steps (NFE = steps x 2 with CFG > 1)")
    cfg: float = option(4.5, "classifier-free guidance scale (1 = off)")
    sampler: str = option("euler", "solver: euler (= DDIM eta 0) or dpm (2nd-order DPM-Solver++)")
    shift: float = option(3.0, "SD3 time shift of the schedule")

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"sampling.steps must be >= 1, got {self.steps}")
        if self.sampler not in ("euler", "dpm"):
            raise ConfigError(f"sampling.sampler must be euler or dpm, got {self.sampler!r}")
        if not 0.0 <= self.cfg < float("inf"):  # also rejects NaN
            raise ConfigError(f"sampling.cfg must be a finite number >= 0, got {self.cfg}")
        if not 0.0 < self.shift < float("inf"):
            raise ConfigError(f"sampling.shift must be a finite number > 0, got {self.shift}")

    @property
    def nfe(self) -> int:
        return self.steps * (2 if self.cfg != 1.0 else 1)


def schedule(cfg: SamplingConfig) -> torch.Tensor:
    """Noise levels s_0 = 1 > ... > s_K = 0 for the chosen solver."""
    if cfg.sampler == "dpm":
        return flow_sigmas(cfg.steps, shift=cfg.shift)
    return uniform_sigmas(cfg.steps, shift=cfg.shift)


def seeded_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """One noise tensor per seed, independent of batch composition."""
    out = torch.empty(len(seeds), *shape)
    for i, seed in enumerate(seeds):
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    return out


def text_velocity(
    model: EmbeddedT2I, prompts: list[str], cfg: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Velocity function of ``model`` for ``prompts`` with classifier-free guidance ``cfg``."""
    cond = model.encode_prompts(prompts)
    if cfg == 1.0:
        return lambda x, s: model(x, s, cond)
    uncond = model.encode_prompts([""] * len(prompts))
    both = (torch.cat([cond[0], uncond[0]]), torch.cat([cond[1], uncond[1]]))

    def velocity(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        v_c, v_u = model(torch.cat([x, x]), torch.cat([s, s]), both).chunk(2)
        return v_u + cfg * (v_c - v_u)

    return velocity


@torch.no_grad()
def generate(model: EmbeddedT2I, prompts: list[str], seeds: list[int], cfg: SamplingConfig) -> Trajectory:
    """Sample one image per (prompt, seed); returns the trajectory (final images in [-1, 1])."""
    noise = seeded_noise(model.image_shape, seeds).to(next(model.parameters()).device)
    return sample(text_velocity(model, prompts, cfg.cfg), noise, schedule(cfg), solver=cfg.sampler)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW tensor -> uint8 NHWC RGB array (one channel is repeated to three)."""
    img = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    return img.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray, channels: int = 3) -> torch.Tensor:
    """uint8 NHWC RGB -> [-1, 1] NCHW float tensor (mean over RGB when ``channels`` is 1)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.mean(dim=1, keepdim=True) if channels == 1 else x


def generate_images(
    model: EmbeddedT2I,
    prompts: list[str],
    seeds: list[int],
    cfg: SamplingConfig,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """uint8 NHWC images for every (prompt, seed), in batches."""
    chunks = []
    for start in range(0, len(prompts), batch_size):
        p, s = prompts[start : start + batch_size], seeds[start : start + batch_size]
        chunks.append(to_uint8(generate(model, p, s, cfg).final))
        if progress is not None:
            progress(len(p))
    return np.concatenate(chunks) if chunks else np.zeros((0, *model.image_shape[1:], 3), np.uint8)
