"""`tdmr1 sample|eval --backbone sd3|zimage --model DIR` through the real CLI on tiny random pipelines: 4-step
images in GenEval layout with a manifest, a trained adapter (export folder) or the authors' order-only .ckpt as
the generator, rewards of any kind, and one-line exit-2 errors (missing folder, wrong pipeline class, distill)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from safetensors.torch import save_file  # noqa: E402

from tdmr1.cli.app import main  # noqa: E402
from tdmr1.config import to_dict  # noqa: E402
from tdmr1.models.lora.presets import lora_settings, ordered_adapter  # noqa: E402
from tdmr1.models.registry import BackboneSpec, images_of, load_backbone  # noqa: E402
from tdmr1.models.tiny import save_tiny_pipeline  # noqa: E402
from tdmr1.tdm.system import FewStepSystem  # noqa: E402

PROMPTS = ["a red cube", "two blue spheres left of a cat"]


def _cli(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["tdmr1", *map(str, args)])
    main()


def _exit_line(monkeypatch, capsys, *args: str) -> str:
    """Run a command that must fail as a user error: exit 2 and exactly one line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        _cli(monkeypatch, *args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def _images(root, n_prompts: int, per_prompt: int) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.open(root / f"{i:05d}" / "samples" / f"{k:04d}.png"))
            for i in range(n_prompts)
            for k in range(per_prompt)
        ]
    )


@pytest.fixture(scope="module", params=["sd3", "zimage"])
def pipeline(request, tmp_path_factory):
    return request.param, save_tiny_pipeline(request.param, tmp_path_factory.mktemp(request.param) / "pipe")


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    return save_tiny_pipeline("sd3", tmp_path_factory.mktemp("sd3only") / "pipe")


def test_sample_scale_backbone(pipeline, tmp_path, monkeypatch):
    kind, folder = pipeline
    out = tmp_path / "samples"
    base = ["sample", "--backbone", kind, "--model", folder, "--resolution", "64", "--device", "cpu"]
    _cli(monkeypatch, *base, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--images-per-prompt", 2, "--out", out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompts"] == PROMPTS and manifest["seeds"] == [[0, 1], [2, 3]]
    sampling = manifest["sampling"]
    assert sampling["backbone"] == kind and sampling["steps"] == 4 and sampling["lora"] is None
    assert sampling["solver"] == ("dpm" if kind == "sd3" else "euler") and sampling["sigmas"][-1] == 0.0
    images = _images(out, 2, 2)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    assert json.loads((out / "00001" / "metadata.jsonl").read_text())["prompt"] == PROMPTS[1]
    # an image's noise depends on its seed only: another batch size gives the same pictures
    out1 = tmp_path / "batch1"
    _cli(monkeypatch, *base, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--images-per-prompt", 2, "--out", out1,
         "--batch-size", 1)  # fmt: skip
    np.testing.assert_allclose(_images(out1, 2, 2).astype(int), images.astype(int), atol=1)


def _adapter_export(folder, path, rank=2):
    """A `tdmr1 train`-style export (adapter.safetensors + config.json) with random non-zero weights, and the
    trainer-path reference images of PROMPTS[0] for seeds 0, 1."""
    model = load_backbone(BackboneSpec(path=str(folder), resolution=64))
    lora = lora_settings("sd3-authors", rank=rank, alpha=2.0 * rank)
    system = FewStepSystem(model, ["generator"], lora)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in system.roles.parameters("generator"):
            p.normal_(0, 0.2)
    path.mkdir()
    save_file(
        {k: v.contiguous() for k, v in system.roles.adapter_state("generator").items()},
        str(path / "adapter.safetensors"),
    )
    info = {"format": "tdmr1-adapter-v1", "kind": "sd3", "lora": to_dict(lora), "backbone": {"resolution": 64},
            "sigmas": system.sigmas.tolist(), "solver": system.solver}  # fmt: skip
    (path / "config.json").write_text(json.dumps(info))
    noise = torch.stack([torch.randn(model.image_shape, generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    text = model.encode_prompts([PROMPTS[0]] * 2)
    return images_of(model, system.rollout(text, noise).final), system


def test_sample_with_trained_adapter_and_authors_ckpt(sd3_folder, tmp_path, monkeypatch):
    reference, system = _adapter_export(sd3_folder, tmp_path / "export")
    base = ["sample", "--model", sd3_folder, "--prompt", PROMPTS[0], "--images-per-prompt", 2, "--device", "cpu"]
    _cli(monkeypatch, *base, "--lora", tmp_path / "export", "--out", tmp_path / "a")  # resolution from the export
    got = _images(tmp_path / "a", 1, 2)
    np.testing.assert_allclose(got.astype(int), reference.astype(int), atol=1)
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["sampling"]["lora"] == str(tmp_path / "export")
    _cli(monkeypatch, *base, "--resolution", 64, "--out", tmp_path / "plain")
    assert np.abs(_images(tmp_path / "plain", 1, 2).astype(int) - got.astype(int)).max() > 2  # the adapter acts

    # the authors' order-only list (preset sd3-authors, r32 / alpha64) as --init-lora
    model = load_backbone(BackboneSpec(path=str(sd3_folder), resolution=64))
    authors = FewStepSystem(model, ["generator"], lora_settings("sd3-authors"))
    torch.manual_seed(4)
    with torch.no_grad():
        for p in authors.roles.parameters("generator"):
            p.normal_(0, 0.05)
    torch.save(ordered_adapter(model.denoiser, "generator"), tmp_path / "tdm.ckpt")
    noise = torch.stack([torch.randn(model.image_shape, generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    want = images_of(model, authors.rollout(model.encode_prompts([PROMPTS[0]] * 2), noise).final)
    _cli(monkeypatch, *base, "--resolution", 64, "--init-lora", tmp_path / "tdm.ckpt", "--out", tmp_path / "b")
    np.testing.assert_allclose(_images(tmp_path / "b", 1, 2).astype(int), want.astype(int), atol=1)


def test_eval_scale_backbone_with_a_file_reward(sd3_folder, tmp_path, monkeypatch, brightness_reward_file):
    reward = brightness_reward_file
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out, js = tmp_path / "eval", tmp_path / "eval.json"
    _cli(monkeypatch, "eval", "--backbone", "sd3", "--model", sd3_folder, "--prompts", prompts, "--reward",
         f"{reward}:Brightness", "--images-per-prompt", 2, "--resolution", 64, "--device", "cpu", "--out", out,
         "--json", js)  # fmt: skip
    result = json.loads(js.read_text())
    assert result == json.loads((out / "results.json").read_text())
    assert result["problems"] == [] and result["scored"] == 4 and result["images"] == 4
    assert (
        result["nfe"] == 4 and result["sampler"] == "dpm" and result["backbone"] == "sd3" and result["device"] == "cpu"
    )
    assert result["reward_name"] == "brightness" and "world" not in result
    brightness = _images(out / "images", 2, 2).astype(np.float32).mean(axis=(1, 2, 3)) / 255.0
    assert result["mean_score"] == pytest.approx(float(brightness.mean()), abs=1e-6)
    assert result["tags"]["untagged"]["images"] == 4


def test_scale_errors_are_one_line(sd3_folder, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "o")
    missing = _exit_line(monkeypatch, capsys, "sample", "--model", tmp_path / "nope", "--prompt", "a", "--out", out)
    assert "not found" in missing
    wrong = _exit_line(monkeypatch, capsys, "sample", "--backbone", "zimage", "--model", sd3_folder, "--prompt", "a",
                       "--out", out)  # fmt: skip
    assert "sd3" in wrong and "zimage" in wrong
    other = tmp_path / "flux"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    assert "FluxPipeline" in _exit_line(monkeypatch, capsys, "eval", "--model", other, "--prompt", "a", "--out", out)
    assert "--steps" in _exit_line(
        monkeypatch, capsys, "sample", "--model", sd3_folder, "--prompt", "a", "--steps", 8, "--out", out
    )
    assert "prompts" in _exit_line(monkeypatch, capsys, "sample", "--model", sd3_folder, "--out", out)
    assert "not both" in _exit_line(
        monkeypatch, capsys, "sample", "--model", sd3_folder, "--checkpoint", sd3_folder, "--prompt", "a", "--out", out
    )
    distill = _exit_line(monkeypatch, capsys, "distill", "--backbone", "sd3", "--model", sd3_folder)
    assert "--init-lora" in distill and "scale path" in distill
