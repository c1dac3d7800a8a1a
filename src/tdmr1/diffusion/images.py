"""Pixel conventions: [-1, 1] NCHW float tensors <-> uint8 NHWC RGB arrays."""

from __future__ import annotations

import numpy as np
import torch


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
