"""A run's warmed-up reward head starts another run (``surrogate_init``); mismatched heads are refused."""

from __future__ import annotations

import pytest
import torch

from helpers import Brightness, rl_cfg
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.r1.surrogate.head_file import WARMUP_FILE
from tdmr1.r1.trainer import TDMR1Trainer

PIXELS = ["surrogate=explicit", "explicit_input=pixels", "head_width=8"]
WARM = ["surrogate_warmup=2", "surrogate_warmup_steps=3", "surrogate_replay=3"]


def test_warm_up_only_run_writes_a_head_that_starts_another_run(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, *WARM, "iterations=0"), tmp_path / "warm", quiet=True)
    tr.reward = Brightness()
    tr.run()
    assert tr.step == 0 and (tmp_path / "warm" / WARMUP_FILE).is_file()
    warmed = [p.detach().clone() for p in tr.surrogate.parameters()]
    assert any(p.abs().sum() > 0 for p in warmed[-2:])  # the zero-initialised output layer was trained
    for source in (tmp_path / "warm" / WARMUP_FILE, tmp_path / "warm"):  # the file, or its folder
        cfg = rl_cfg(tiny_student, *PIXELS, f"surrogate_init={source}")
        again = TDMR1Trainer(cfg, tmp_path / "next", quiet=True)
        assert all(torch.equal(a, b) for a, b in zip(warmed, again.surrogate.parameters(), strict=True))


def test_a_head_of_another_shape_or_surrogate_is_refused(tiny_student, tmp_path):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, *WARM, "iterations=0"), tmp_path / "warm", quiet=True)
    tr.reward = Brightness()
    tr.run()
    head = tmp_path / "warm" / WARMUP_FILE
    with pytest.raises(CheckpointError, match="head_width 8 \\(this run: 16\\)"):
        TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, "head_width=16", f"surrogate_init={head}"), tmp_path / "b")
    with pytest.raises(CheckpointError, match="surrogate_init"):
        TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, f"surrogate_init={tmp_path / 'nope.safetensors'}"), tmp_path / "c")
    with pytest.raises(ConfigError, match="surrogate=explicit"):
        rl_cfg(tiny_student, f"surrogate_init={head}")
