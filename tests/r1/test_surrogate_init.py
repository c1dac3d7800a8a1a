"""A run's warmed-up reward head starts another run (``surrogate_init``); mismatched heads are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from helpers import Brightness, rl_cfg
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.r1.surrogate.head_file import WARMUP_FILE
from tdmr1.r1.trainer import TDMR1Trainer

PIXELS = ["surrogate=explicit", "explicit_input=pixels", "head_width=8"]
ATTEND = [*PIXELS, "explicit_prompt=attention"]
WARM = ["surrogate_warmup=2", "surrogate_warmup_steps=3", "surrogate_replay=3"]


@pytest.mark.parametrize("head", [PIXELS, ATTEND], ids=["mean", "attention"])
def test_warm_up_only_run_writes_a_head_that_starts_another_run(tiny_student, tmp_path, head):
    tr = TDMR1Trainer(rl_cfg(tiny_student, *head, *WARM, "iterations=0"), tmp_path / "warm", quiet=True)
    tr.reward = Brightness()
    tr.run()
    assert tr.step == 0 and (tmp_path / "warm" / WARMUP_FILE).is_file()
    warmed = [p.detach().clone() for p in tr.surrogate.parameters()]
    assert any(p.abs().sum() > 0 for p in warmed[-2:])  # the zero-initialised output layer was trained
    for source in (tmp_path / "warm" / WARMUP_FILE, tmp_path / "warm"):  # the file, or its folder
        cfg = rl_cfg(tiny_student, *head, f"surrogate_init={source}")
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
    with pytest.raises(CheckpointError, match="explicit_prompt 'mean' \\(this run: 'attention'\\)"):
        TDMR1Trainer(rl_cfg(tiny_student, *ATTEND, f"surrogate_init={head}"), tmp_path / "d")
    with pytest.raises(ConfigError, match="explicit_input=pixels"):
        rl_cfg(tiny_student, "surrogate=explicit", "explicit_prompt=attention")


def test_a_head_file_older_than_explicit_prompt_loads_as_mean(tiny_student, tmp_path):
    """Files written before ``explicit_prompt`` existed (the shipped warm-ups) carry no such key: mean."""
    tr = TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, *WARM, "iterations=0"), tmp_path / "warm", quiet=True)
    tr.reward = Brightness()
    tr.run()
    path = tmp_path / "warm" / WARMUP_FILE
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["tdmr1"])
    del meta["explicit_prompt"]
    save_file(load_file(str(path)), str(path), metadata={"tdmr1": json.dumps(meta)})
    TDMR1Trainer(rl_cfg(tiny_student, *PIXELS, f"surrogate_init={path}"), tmp_path / "old", quiet=True)
    with pytest.raises(CheckpointError, match="explicit_prompt 'mean'"):
        TDMR1Trainer(rl_cfg(tiny_student, *ATTEND, f"surrogate_init={path}"), tmp_path / "e")
