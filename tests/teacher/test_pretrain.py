"""Teacher pretraining: loss goes down, resume is exact, checkpoints load or fail clearly, sampling is seeded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tdmr1.config import load_config
from tdmr1.diffusion.images import from_uint8
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import CheckpointError
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import generate_images
from tdmr1.teacher.pretrain import PretrainConfig, build_model, flow_matching_loss, pretrain
from tdmr1.worlds import get_world


def _cfg(overrides, *extra):
    return load_config(
        PretrainConfig,
        None,
        [
            *overrides,
            "batch_size=8",
            "log_every=1",
            "checkpoint_every=2",
            "snapshot_every=0",
            "sample_every=0",
            "warmup_steps=1",
            "sampling.steps=2",
            *extra,
        ],
    )


def test_steps_reduce_loss_on_fixed_batch(tiny_backbone_overrides):
    torch.manual_seed(0)
    cfg = _cfg(tiny_backbone_overrides)
    model = build_model(cfg)
    images, captions = get_world("shapes").training_batch(np.random.default_rng(0), 16)
    x0 = from_uint8(images)
    s, eps = torch.rand(16), torch.randn_like(x0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    with torch.no_grad():
        before = flow_matching_loss(model, x0, captions, s, eps).item()
    for _ in range(15):
        loss = flow_matching_loss(model, x0, captions, s, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = flow_matching_loss(model, x0, captions, s, eps).item()
    assert after < 0.8 * before


def test_resume_continues_identically(tmp_path, tiny_backbone_overrides):
    full = tmp_path / "full"
    pretrain(_cfg(tiny_backbone_overrides, "steps=4"), full, quiet=True)
    part = tmp_path / "part"
    pretrain(_cfg(tiny_backbone_overrides, "steps=2"), part, quiet=True)
    pretrain(_cfg(tiny_backbone_overrides, "steps=4"), part, quiet=True)  # resumes at step 2
    a = EmbeddedT2I.load(full / "model").state_for_save()
    b = EmbeddedT2I.load(part / "model").state_for_save()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads(x)["loss"] for x in (full / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x)["loss"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert losses == resumed  # steps 1-2 from the first run, 3-4 after resume
    assert (full / "samples" / "step_000004.png").is_file()


def test_sampling_is_deterministic_per_seed(tiny_backbone_overrides):
    torch.manual_seed(0)
    model = build_model(_cfg(tiny_backbone_overrides)).eval()
    cfg = SamplingConfig(steps=3, cfg=2.0)
    a = generate_images(model, ["a red circle", "two squares"], [5, 6], cfg)
    b = generate_images(model, ["two squares", "a red circle"], [6, 5], cfg)
    assert np.array_equal(a, b[::-1])
    c = generate_images(model, ["a red circle"], [7], cfg)
    assert not np.array_equal(a[:1], c)


def test_checkpoint_errors(tmp_path, tiny_backbone_overrides):
    model = build_model(_cfg(tiny_backbone_overrides))
    model.save(tmp_path / "ok")
    assert EmbeddedT2I.load(tmp_path / "ok").tokenizer.vocab == model.tokenizer.vocab
    with pytest.raises(CheckpointError, match="not found"):
        EmbeddedT2I.load(tmp_path / "nothing")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        EmbeddedT2I.load(tmp_path / "ok")
    model.save(tmp_path / "missing")
    (tmp_path / "missing" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing config.json"):
        EmbeddedT2I.load(tmp_path / "missing")
    other = build_model(_cfg(tiny_backbone_overrides, "backbone.block_out_channels=[16, 32, 32]"))
    other.save(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="shape|match"):
        EmbeddedT2I.load(tmp_path / "other")
