"""Device choice: auto falls back to the CPU, unknown or absent devices are one-line config errors."""

from __future__ import annotations

import pytest
import torch

from tdmr1.devices import resolve_device
from tdmr1.errors import ConfigError


def test_auto_is_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu0", "cuda:x"])
def test_unknown_devices_are_config_errors(name):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
