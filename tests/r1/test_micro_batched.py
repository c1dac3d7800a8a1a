"""The rollout and the ``sur_rank`` diagnostic run in micro-batches of ``per_device_batch`` images: the same
states, predictions and margins as one forward over all of a process's rows (the noise is drawn first)."""

from __future__ import annotations

import torch

from helpers import rl_cfg
from tdmr1.config import load_config
from tdmr1.r1.diagnostics import clean_margin
from tdmr1.r1.rollout import chunked_rollout
from tdmr1.r1.scale_config import ScaleRLConfig
from tdmr1.r1.trainer import TDMR1Trainer


def test_chunked_rollout_and_sur_rank_equal_one_forward(tiny_student, tmp_path):
    trainer = TDMR1Trainer(rl_cfg(tiny_student, "prompts_per_iteration=3", "group_size=2"), tmp_path, quiet=True)
    assert trainer.layout.per_device_batch == 2 and trainer.layout.images_per_process == 6
    system = trainer.system
    cond = system.encode([f"prompt {i}" for i in range(3) for _ in range(2)])
    noise = system.randn(6, generator=torch.Generator().manual_seed(0))
    whole = system.rollout(cond, noise)
    chunked = chunked_rollout(system, cond, noise, trainer.layout.per_device_batch)
    assert chunked.states.shape == whole.states.shape and chunked.x0_preds.shape == whole.x0_preds.shape
    torch.testing.assert_close(chunked.states, whole.states, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.x0_preds, whole.x0_preds, rtol=1e-5, atol=1e-6)
    assert torch.equal(chunked.states[:, :2], system.rollout((cond[0][:2], cond[1][:2]), noise[:2]).states)
    group = torch.arange(3).repeat_interleave(2)
    args = (trainer.surrogate, whole.final, cond, group, 0.2, 0.8, 2)
    one = clean_margin(*args, torch.Generator().manual_seed(1))
    micro = clean_margin(*args, torch.Generator().manual_seed(1), chunk=4)  # chunks of 4 and 2
    torch.testing.assert_close(micro, one, rtol=1e-5, atol=1e-6)
    ro = trainer.rollout()
    assert ro.states.shape[1] == 6 and ro.x0_preds is not None


def test_scale_runs_chunk_their_forwards_and_embedded_runs_do_not():
    scale = load_config(ScaleRLConfig, None, ["prompts_per_iteration=4", "group_size=6", "per_device_batch=3"])
    assert scale.layout(4).forward_rows == 3 and scale.layout(2).forward_rows == 3
    derived = load_config(ScaleRLConfig, None, ["prompts_per_iteration=4", "group_size=6", "minibatch_groups=2"])
    assert derived.layout(1).forward_rows == 12  # the micro-batch of 2 groups, of 24 images
    assert derived.layout(1).images_per_process == 24
