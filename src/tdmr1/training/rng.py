"""Random streams a training loop owns (:class:`RunRNG`, saved in ``state.pt``; nothing reads the global RNG), so
that a resumed run continues bit for bit (usage: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


class RunRNG:
    """A numpy Generator and a torch Generator on the run's device, with ``state_dict``/``load_state_dict``
    (so it rides in ``save_training_state``'s ``modules``)."""

    def __init__(self, seed: int, device: torch.device | str = "cpu", stream: int = 0):
        self.device = torch.device(device)
        self.numpy = np.random.default_rng(seed if stream == 0 else [seed, stream])
        self.torch = torch.Generator(device=self.device)
        self.torch.manual_seed(int(seed) + 1_000_003 * int(stream))

    # ---- torch draws on the run's device --------------------------------------------------------
    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.torch, device=self.device)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.torch, device=x.device, dtype=x.dtype)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.torch, device=self.device)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.torch, device=self.device)

    def randperm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.torch, device=self.device)

    def multinomial(self, probs: torch.Tensor, n: int, replacement: bool = True) -> torch.Tensor:
        return torch.multinomial(probs, n, replacement=replacement, generator=self.torch)

    # ---- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"numpy": self.numpy.bit_generator.state, "torch": self.torch.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.numpy.bit_generator.state = state["numpy"]
        self.torch.set_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])


@contextlib.contextmanager
def global_rng_untouched(device: torch.device | str | None = None) -> Iterator[None]:
    """Run a block (building a model, a library call) without consuming the global torch RNG: its state
    (and the CUDA one of ``device``) is restored afterwards."""
    devices = []
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_initialized():
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        yield


class GeneratorState:
    """A bare ``torch.Generator`` seen as a module with a state dict (for ``save_training_state``'s modules)."""

    def __init__(self, gen: torch.Generator):
        self.gen = gen

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["state"])
