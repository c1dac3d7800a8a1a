"""The authors' LoRA layouts (attn.-prefixed, r32/alpha64) and their order-only adapter files."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import SD3Transformer2DModel, ZImageTransformer2DModel  # noqa: E402

from tdmr1.errors import CheckpointError, ConfigError  # noqa: E402
from tdmr1.models.lora.presets import (
    SD35M_TRANSFORMER_CONFIG,
    adapter_layout,
    load_ordered_adapter,
    lora_for_backbone,
    lora_settings,
    named_to_ordered,
    ordered_adapter,
    ordered_to_named,
    reference_layout,
)
from tdmr1.models.lora.roles import LoraSettings, Roles  # noqa: E402

SD35M = SD35M_TRANSFORMER_CONFIG


def _count(layout):
    return len(layout), sum(math.prod(shape) for _, shape in layout)


def test_authors_layouts_on_the_real_configs():
    """On the meta device: 382 tensors / 18.78 M per role (SD3.5-M), 272 / 33.42 M (Z-Image, the class
    defaults are Z-Image-Turbo's config); the bare-name preset would also adapt attn2 and the FFs."""
    sd3 = reference_layout(SD3Transformer2DModel, SD35M, lora_settings("sd3-authors"))
    assert _count(sd3) == (382, 18_776_064)
    assert {shape for _, shape in sd3} == {(32, 1536), (1536, 32)}
    assert not any("attn2" in name or ".ff" in name for name, _ in sd3)
    bare = reference_layout(SD3Transformer2DModel, SD35M, lora_settings("transformer"))
    assert _count(bare)[0] > 382 and any("attn2" in name for name, _ in bare)
    zimage = reference_layout(ZImageTransformer2DModel, {}, lora_settings("zimage-authors"))
    assert _count(zimage) == (272, 33_423_360)
    assert {shape for _, shape in zimage} == {(32, 3840), (3840, 32)}
    assert lora_settings("sd3-authors").rank == 32 and lora_settings("sd3-authors").alpha == 64.0
    with pytest.raises(ConfigError, match="unknown LoRA preset"):
        lora_settings("nope")


def _tiny_sd3():
    from tdmr1.models.tiny import tiny_sd3_transformer

    return tiny_sd3_transformer()


def test_ordered_file_round_trip_and_checks(tmp_path):
    denoiser = _tiny_sd3()
    roles = Roles(denoiser, ["generator", "fake"], lora_settings("sd3-authors", rank=4, alpha=8.0))
    with torch.no_grad():
        for p in roles.parameters("generator"):
            p.copy_(torch.randn_like(p))
    released = ordered_adapter(denoiser, "generator")
    layout = adapter_layout(denoiser, "generator")
    assert len(released) == len(layout) == 2 * (8 + 7)  # 8 projections per block, the last has no to_add_out
    path = tmp_path / "tdm_sd3-5_lora.ckpt"
    torch.save(released, path)
    # .ckpt -> fake role: exact
    assert load_ordered_adapter(denoiser, "fake", path) == len(layout)
    for a, b in zip(roles.parameters("generator"), roles.parameters("fake"), strict=True):
        assert torch.equal(a, b)
    # .ckpt -> named -> .ckpt: exact, and the named form loads through Roles
    named = ordered_to_named(released, layout)
    assert all(torch.equal(a, b) for a, b in zip(named_to_ordered(named, layout), released, strict=True))
    roles.load_adapter_state("fake", {k: torch.zeros_like(v) for k, v in named.items()})
    roles.load_adapter_state("fake", named)
    assert all(torch.equal(a, b) for a, b in zip(roles.parameters("fake"), roles.parameters("generator"), strict=True))
    # wrong count, wrong shapes, wrong order where it changes shapes
    with pytest.raises(CheckpointError, match="29 tensors"):
        load_ordered_adapter(denoiser, "fake", released[:-1])
    with pytest.raises(CheckpointError, match="tensor 0 has shape"):
        load_ordered_adapter(denoiser, "fake", released[::-1])  # B first: (32, 4) where A (4, 32) belongs
    with pytest.raises(CheckpointError, match="tensor 0 has shape"):
        load_ordered_adapter(denoiser, "fake", released[1:] + released[:1])  # shifted by one
    with pytest.raises(CheckpointError, match="wrong order, rank or model"):
        load_ordered_adapter(denoiser, "fake", [t.repeat(2, 1) if t.shape[0] == 4 else t for t in released])
    with pytest.raises(CheckpointError, match="missing"):
        named_to_ordered({k: v for k, v in list(named.items())[1:]}, layout)
    # NOT detectable: swapping two whole layers (A/B pairs) of equal shapes -- documented limitation
    swapped = released[2:4] + released[0:2] + released[4:]
    load_ordered_adapter(denoiser, "fake", swapped)
    assert not torch.equal(roles.parameters("fake")[0], roles.parameters("generator")[0])
    # unsafe or malformed files are refused without running code
    torch.save({"not": "tensors"}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="list of tensors"):
        load_ordered_adapter(denoiser, "fake", tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        load_ordered_adapter(denoiser, "fake", tmp_path / "missing.ckpt")


def test_lora_for_backbone_uses_the_backbone_default():
    class Fake(torch.nn.Module):
        default_lora_targets = ("attn.to_q",)

    assert lora_for_backbone(LoraSettings(), Fake()).target_modules == ("attn.to_q",)
    explicit = LoraSettings(target_modules=("to_k",))
    assert lora_for_backbone(explicit, Fake()) is explicit
    assert lora_for_backbone(LoraSettings(), torch.nn.Linear(1, 1)).target_modules == LoraSettings().target_modules


def test_convert_lora_with_names_from_a_pipeline_folder(tmp_path):
    from tdmr1.models.lora.presets import convert_lora, pipeline_layout
    from tdmr1.models.tiny import tiny_sd3_pipeline

    pipe = tiny_sd3_pipeline()
    pipe.transformer.save_config(str(tmp_path / "pipe" / "transformer"))
    lora = lora_settings("sd3-authors", rank=4, alpha=8.0)
    layout = pipeline_layout(tmp_path / "pipe", lora)
    roles = Roles(pipe.transformer, ["generator"], lora)
    assert layout == adapter_layout(pipe.transformer, "generator")
    with torch.no_grad():
        for p in roles.parameters("generator"):
            p.normal_()
    released = ordered_adapter(pipe.transformer, "generator")
    torch.save(released, tmp_path / "a.ckpt")
    convert_lora(tmp_path / "a.ckpt", tmp_path / "a.safetensors", layout)
    convert_lora(tmp_path / "a.safetensors", tmp_path / "b.ckpt", layout)
    back = torch.load(tmp_path / "b.ckpt", weights_only=True)["ema_parameters"]  # the authors' EMA form
    assert len(back) == len(released) and all(torch.equal(a, b) for a, b in zip(back, released, strict=True))
    torch.save(released[:-2], tmp_path / "short.ckpt")
    with pytest.raises(CheckpointError, match="tensors, but"):
        convert_lora(tmp_path / "short.ckpt", tmp_path / "c.safetensors", layout)
    with pytest.raises(ConfigError):
        convert_lora(tmp_path / "a.ckpt", tmp_path / "d.ckpt", layout)
    with pytest.raises(CheckpointError, match="transformer/config.json"):
        pipeline_layout(tmp_path, lora)
