"""LoRA files in the authors' release format (their EMA wrapper: ``{"decay", "ema_parameters": [tensors]}``) load
through `sample --init-lora`, `train --init-lora` and `convert-lora` on tiny SD3 and Z-Image pipelines."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("diffusers")

from tdmr1.cli.app import main  # noqa: E402
from tdmr1.models.lora.presets import lora_settings, ordered_adapter, read_ordered  # noqa: E402
from tdmr1.models.lora.roles import Roles  # noqa: E402
from tdmr1.models.registry import BackboneSpec, load_backbone  # noqa: E402
from tdmr1.models.tiny import save_tiny_pipeline  # noqa: E402


def _cli(monkeypatch, *args) -> None:
    monkeypatch.setattr(sys, "argv", ["tdmr1", *map(str, args)])
    main()


@pytest.fixture(scope="module", params=["sd3", "zimage"])
def pipeline(request, tmp_path_factory):
    return request.param, save_tiny_pipeline(request.param, tmp_path_factory.mktemp(request.param) / "pipe")


def _authors_file(kind, folder, path, rank=None, seed=5) -> list[torch.Tensor]:
    """An adapter of the authors' layout with random weights, saved exactly as their EMAModuleWrapper.save does."""
    model = load_backbone(BackboneSpec(path=str(folder), resolution=64))
    lora = lora_settings(f"{kind}-authors", rank=rank, alpha=None if rank is None else 2.0 * rank)
    Roles(model.denoiser, ["generator"], lora)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.denoiser.named_parameters():
            if ".generator." in name:
                p.normal_(0, 0.05)
    tensors = ordered_adapter(model.denoiser, "generator")
    torch.save({"decay": 0.9, "ema_parameters": tensors}, path)
    return tensors


def _generator(denoiser) -> list[torch.Tensor]:
    return [p.detach().cpu() for n, p in denoiser.named_parameters() if ".generator." in n and "lora_" in n]


def test_read_ordered_takes_the_ema_wrapper_form(tmp_path):
    tensors = [torch.randn(2, 3), torch.randn(3, 2)]
    torch.save({"decay": 0.999, "ema_parameters": tensors}, tmp_path / "ema.ckpt")
    got = read_ordered(tmp_path / "ema.ckpt")
    assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, tensors, strict=True))
    torch.save({"decay": 0.999, "ema_parameters": "nope"}, tmp_path / "bad.ckpt")
    from tdmr1.errors import CheckpointError

    with pytest.raises(CheckpointError, match="ema_parameters"):
        read_ordered(tmp_path / "bad.ckpt")


def test_sample_init_lora_in_the_authors_format(pipeline, tmp_path, monkeypatch):
    kind, folder = pipeline
    ckpt = tmp_path / "tdm_lora.ckpt"
    tensors = _authors_file(kind, folder, ckpt)
    from tdmr1.pipelines.scale_sampling import load_scale_generator

    gen = load_scale_generator(folder, kind, ckpt, 64, "fp32", "cpu")
    loaded = _generator(gen.model.denoiser)
    assert len(loaded) == len(tensors) and all(torch.equal(a, b) for a, b in zip(loaded, tensors, strict=True))
    out = tmp_path / "samples"
    _cli(monkeypatch, "sample", "--model", folder, "--init-lora", ckpt, "--prompt", "a red cube", "--resolution", 64,
         "--images-per-prompt", 1, "--device", "cpu", "--out", out)  # fmt: skip
    assert (out / "00000" / "samples" / "0000.png").is_file()


def test_train_init_lora_in_the_authors_format(pipeline, tmp_path, monkeypatch, brightness_reward_file):
    kind, folder = pipeline
    ckpt = tmp_path / "tdm_lora.ckpt"
    tensors = _authors_file(kind, folder, ckpt, rank=2)
    from tdmr1.r1.trainer import TDMR1Trainer

    seen = {}
    monkeypatch.setattr(TDMR1Trainer, "run", lambda self, resume=True: seen.setdefault("trainer", self) and "x")
    reward = f"{brightness_reward_file}:Brightness"
    sets = "backbone.resolution=64 lora.rank=2 prompts_per_iteration=1 group_size=2 minibatch_groups=1".split()
    _cli(monkeypatch, "train", "--model", folder, "--init-lora", ckpt, "--reward", reward, "--out", tmp_path / "run",
         *[arg for item in sets for arg in ("--set", item)])  # fmt: skip
    trainer = seen["trainer"]
    loaded = _generator(trainer.model.denoiser)
    assert len(loaded) == len(tensors) and all(torch.equal(a, b) for a, b in zip(loaded, tensors, strict=True))


def test_convert_lora_reads_and_writes_the_authors_format(pipeline, tmp_path, monkeypatch):
    kind, folder = pipeline
    ckpt = tmp_path / "tdm_lora.ckpt"
    tensors = _authors_file(kind, folder, ckpt)
    named, back = tmp_path / "named.safetensors", tmp_path / "back.ckpt"
    _cli(monkeypatch, "convert-lora", ckpt, named, "--model", folder)
    (tmp_path / "config.json").write_text(json.dumps({"format": "tdmr1-adapter-v1", "ema_decay": 0.95}))
    _cli(monkeypatch, "convert-lora", named, back, "--model", folder)
    obj = torch.load(back, weights_only=True)
    assert set(obj) == {"decay", "ema_parameters"} and obj["decay"] == 0.95  # what the authors' ema.load reads
    assert all(torch.equal(a, b) for a, b in zip(obj["ema_parameters"], tensors, strict=True))
    assert len(obj["ema_parameters"]) == len(tensors)
