"""Device choice for training and sampling: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda[:i]``."""

from __future__ import annotations

import torch

from tdmr1.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a config value; ConfigError when CUDA is asked for but absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu or cuda[:index])") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU (use auto or cpu)")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {name!r} (use auto, cpu or cuda[:index])")
    return device


def model_device(module: torch.nn.Module) -> torch.device:
    """Device of a module's first parameter (CPU for a module without parameters)."""
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
