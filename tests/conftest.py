"""Shared fixtures: offline hub, few threads, a tiny embedded model config."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

TEST_THREADS = int(os.environ.get("TDMR1_TEST_THREADS", "2"))
torch.set_num_threads(TEST_THREADS)

TINY_BACKBONE = [
    "backbone.block_out_channels=[16, 16, 32]",
    "backbone.norm_num_groups=8",
    "backbone.attention_heads=2",
    "backbone.text_hidden=16",
    "backbone.text_layers=1",
    "backbone.text_heads=2",
]


@pytest.fixture(autouse=True)
def _suite_thread_count():
    """Every test starts with the suite's torch thread count: a benchmark's ``main(["--threads", "1"])`` or a
    trainer with ``threads`` set changes it for the whole process, and the golden numbers depend on it."""
    torch.set_num_threads(TEST_THREADS)
    yield


@pytest.fixture
def tiny_backbone_overrides() -> list[str]:
    return list(TINY_BACKBONE)


@pytest.fixture
def brightness_reward_file(tmp_path):
    """The tests' dense reward (``tests/brightness_reward.py``, also ``helpers.Brightness``) as a black-box
    reward in a user's file: pass ``f"{path}:Brightness"``."""
    path = tmp_path / "my_reward.py"
    shutil.copyfile(Path(__file__).with_name("brightness_reward.py"), path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A randomly initialised tiny teacher checkpoint (fp32) shared by the distill and RL tests."""
    from tdmr1.config import load_config
    from tdmr1.teacher.pretrain import PretrainConfig, build_model

    torch.manual_seed(0)
    model = build_model(load_config(PretrainConfig, None, TINY_BACKBONE))
    path = tmp_path_factory.mktemp("teacher") / "model"
    model.save(path, dtype=None)
    return path


@pytest.fixture(scope="session")
def tiny_student(tiny_teacher, tmp_path_factory):
    """A 4-step student exported by one tiny distillation iteration of the tiny teacher."""
    from tdmr1.config import load_config
    from tdmr1.tdm.distill import DistillConfig, distill

    cfg = load_config(
        DistillConfig,
        None,
        [f"teacher={tiny_teacher}", "iterations=1", "batch_size=2", "lora.rank=2", "sample_every=0"],
    )
    return distill(cfg, tmp_path_factory.mktemp("student") / "run", quiet=True)
