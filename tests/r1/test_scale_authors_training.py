"""The scale path trains as the authors' code does: with DPM-Solver++ the fake-score and generator terms are noised
from the Euler step (the DPM states only feed the surrogate), SD3 sees integer timesteps at the schedule's levels,
one batch layout for any number of processes, no reward directions where they are masked, every field listed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

import tdmr1.r1.trainer as rl  # noqa: E402
import tdmr1.r1.updates as updates  # noqa: E402
from tdmr1.cli.app import main  # noqa: E402
from tdmr1.config import describe_config, load_config  # noqa: E402
from tdmr1.diffusion.flow import euler_step  # noqa: E402
from tdmr1.errors import ConfigError  # noqa: E402
from tdmr1.models.registry import BackboneSpec, load_backbone  # noqa: E402
from tdmr1.models.tiny import save_tiny_pipeline  # noqa: E402
from tdmr1.r1.config import batch_layout  # noqa: E402
from tdmr1.r1.scale_config import ScaleRLConfig  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "scale"


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    return save_tiny_pipeline("sd3", tmp_path_factory.mktemp("sd3") / "pipe")


def _trainer(folder, reward_file, out, *overrides: str) -> rl.TDMR1Trainer:
    values = {"backbone.path": str(folder), "reward": f"{reward_file}:Brightness"}
    base = ["backbone.resolution=64", "lora.rank=2", "prompts_per_iteration=1", "group_size=2", "minibatch_groups=1"]
    cfg = load_config(ScaleRLConfig, None, [*base, "val_every=0", *overrides], values=values)
    return rl.TDMR1Trainer(cfg, out, quiet=True)


def _euler(tr, ro, j: int) -> torch.Tensor:
    """The authors' noising point ``x_t - (s_t - s_next) v`` from the rollout's state j (v from its x0)."""
    s, s_next = tr.system.sigmas[j], tr.system.sigmas[j + 1]
    x = ro.states[j]
    return euler_step(x, (x - ro.x0_preds[j]) / s, s, s_next)


def test_dpm_fake_and_generator_terms_are_noised_from_the_euler_step(sd3_folder, brightness_reward_file, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    tr = _trainer(sd3_folder, brightness_reward_file, tmp_path, "train_steps_per_iteration=4")
    assert tr.system.solver == "dpm"
    ro = tr.rollout()
    for j in (1, 2):  # the second-order DPM states differ from the Euler step (the first step is first-order)
        assert float((ro.states[j + 1] - _euler(tr, ro, j)).abs().max()) > 1e-4
    monkeypatch.setattr(tr.update, "train_steps", lambda: [1, 2, 3])
    seen: dict[str, list] = {"fake": [], "reward": [], "diffuse": []}
    real_fake_loss, real_reward_point, real_diffuse = updates.fake_loss, updates.reward_point, tr.system.diffuse

    def fake_loss(system, x_next, *args):
        seen["fake"].append(x_next.detach().clone())
        return real_fake_loss(system, x_next, *args)

    def reward_point(x_n, *args, **kwargs):
        seen["reward"].append(x_n.detach().clone())
        return real_reward_point(x_n, *args, **kwargs)

    def diffuse(x, *args):
        seen["diffuse"].append(x.detach().clone())
        return real_diffuse(x, *args)

    monkeypatch.setattr(updates, "fake_loss", fake_loss)
    monkeypatch.setattr(updates, "reward_point", reward_point)
    monkeypatch.setattr(tr.system, "diffuse", diffuse)
    tr.update.fake(ro)  # reuses the rollout's x0 predictions
    tr.update.fake(ro.without_predictions())  # runs the generator again
    tr.update.generator(ro)
    want = [_euler(tr, ro, j) for j in (1, 2, 3)]
    for key, got in (("fake", seen["fake"][:3]), ("fake", seen["fake"][3:]), ("reward", seen["reward"])):
        assert len(got) == 3, key
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    assert len(seen["diffuse"]) == 9  # 6 in the fake updates, then the generator's fake / base targets
    for g, w in zip(seen["diffuse"][6:], want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def _timesteps(model, s: torch.Tensor) -> torch.Tensor:
    seen = []
    hook = model.denoiser.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["timestep"].clone()), with_kwargs=True
    )
    try:
        x = torch.randn(len(s), *model.image_shape)
        with torch.no_grad():
            model(x, s, model.encode_prompts(["a red cube"] * len(s)))
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize("name", ["sd35m_geneval", "sd35m_ocr"])
def test_sd3_configs_feed_the_authors_integer_timesteps(name, sd3_folder):
    """The schedule's levels give the DPM scheduler's 999, 899, 749, 499; tau draws stay floats, as the authors'."""
    spec = load_config(ScaleRLConfig, CONFIGS / f"{name}.yaml").backbone
    model = load_backbone(dataclasses.replace(spec, path=str(sd3_folder), resolution=64, text_dtype="fp32"))
    levels = torch.tensor(spec.sigmas[:-1])
    assert _timesteps(model, levels).tolist() == [999.0, 899.0, 749.0, 499.0]
    assert _timesteps(model, torch.tensor([0.6123, 0.9]))[0].item() == pytest.approx(612.3, abs=1e-3)
    off = load_backbone(BackboneSpec(path=str(sd3_folder), resolution=64, integer_timesteps=False))
    assert _timesteps(off, levels)[0].item() == pytest.approx(999.6665, abs=1e-3)


def test_one_batch_layout_for_one_process_too():
    cfg = load_config(ScaleRLConfig, None, ["prompts_per_iteration=4", "group_size=2", "per_device_batch=4"])
    layout = batch_layout(cfg, 0, 1)
    assert layout == cfg.layout(1) and layout.per_device_batch == 4 and layout.minibatch_groups == 2
    bad = load_config(ScaleRLConfig, None, ["prompts_per_iteration=4", "group_size=4", "per_device_batch=2"])
    with pytest.raises(ConfigError, match="per_device_batch 2"):
        batch_layout(bad, 0, 1)
    derived = load_config(ScaleRLConfig, None, ["prompts_per_iteration=4", "group_size=2", "minibatch_groups=2"])
    assert batch_layout(derived, 0, 1).per_device_batch == 4  # no per_device_batch: minibatch_groups x G / W
    geneval = load_config(ScaleRLConfig, CONFIGS / "sd35m_geneval.yaml")
    assert geneval.layout(8).minibatch_groups == 4 and geneval.sur_rank_every == 0
    with pytest.raises(ConfigError, match="multiple of 24"):  # one GPU: a micro-batch holds whole groups
        geneval.layout(1)


def test_no_reward_direction_where_it_is_masked(sd3_folder, brightness_reward_file, tmp_path, monkeypatch):
    tr = _trainer(sd3_folder, brightness_reward_file, tmp_path, "trunc_steps=2", "train_steps_per_iteration=4")
    ro = tr.rollout()
    calls = []
    real = tr.surrogate.reward_direction
    monkeypatch.setattr(tr.surrogate, "reward_direction", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(tr.update, "train_steps", lambda: [0, 1, 2, 3])
    stats = tr.update.generator(ro)
    assert len(calls) == 2 and stats["loss_gen"] == stats["loss_gen"]  # j = 0, 1 only; finite loss


def test_config_show_lists_every_scale_field(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(sys, "argv", ["tdmr1", "config", "show", "train"])
    main()
    out = capsys.readouterr().out
    keys = [key for key, _, _ in describe_config(ScaleRLConfig)]
    for key in ("backbone.path", "backbone.integer_timesteps", "init_lora", "per_device_batch", "base_dtype"):
        assert key in keys
    missing = [key for key in keys if f" {key} " not in out]
    assert not missing, missing
    monkeypatch.setattr(sys, "argv", ["tdmr1", "config", "check", "train", str(CONFIGS / "zimage.yaml")])
    main()
    assert capsys.readouterr().out.strip() == "ok"


@pytest.fixture(scope="module")
def zimage_folder(tmp_path_factory):
    return save_tiny_pipeline("zimage", tmp_path_factory.mktemp("zimage") / "pipe")


def test_memory_switches_of_the_zimage_config(zimage_folder, brightness_reward_file, tmp_path, monkeypatch):
    """configs/scale/zimage.yaml: gradient checkpointing, cached prompts (no text encoder after start), a bf16
    frozen base under fp32 LoRA weights and AdamW states; one iteration trains the generator."""
    shipped = load_config(ScaleRLConfig, CONFIGS / "zimage.yaml")
    assert (shipped.gradient_checkpointing, shipped.cache_prompts, shipped.base_dtype) == (True, True, "bf16")
    assert ScaleRLConfig().gradient_checkpointing is False and ScaleRLConfig().base_dtype == "fp32"
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(ScaleRLConfig, None, ["base_dtype=bf16"])
    switches = ["gradient_checkpointing=true", "cache_prompts=true", "base_dtype=bf16", "backbone.mixed_precision=bf16"]
    tr = _trainer(zimage_folder, brightness_reward_file, tmp_path, *switches, "sur_rank_every=0")
    denoiser = tr.model.denoiser
    assert denoiser.is_gradient_checkpointing
    dtypes = {("lora_" in n, p.dtype) for n, p in denoiser.named_parameters() if p.is_floating_point()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}
    for opt in tr.opt.values():
        assert all(p.dtype == torch.float32 for g in opt.param_groups for p in g["params"])
    monkeypatch.setattr(tr.model, "_encode_uncached", lambda *a: pytest.fail("text encoder ran after caching"))
    before = [p.detach().clone() for p in tr.roles.parameters("generator")]
    stats = tr.iteration()
    assert stats["loss_gen"] == stats["loss_gen"] and stats["loss_fake"] == stats["loss_fake"]
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.roles.parameters("generator"), strict=True))
    assert all(p.dtype == torch.float32 for s in tr.opt["generator"].state.values() for p in s.values() if p.ndim)


def test_accelerate_fsdp_deepspeed_and_mixed_precision_are_refused(sd3_folder, tmp_path, monkeypatch, capsys):
    """accelerate is used only to start the process group: a config asking for more fails in one line."""
    from tdmr1.training.distributed import check_accelerate_env

    check_accelerate_env({"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_USE_FSDP": "false"})
    for env, word in (({"ACCELERATE_USE_FSDP": "true"}, "FSDP"), ({"ACCELERATE_USE_DEEPSPEED": "true"}, "DeepSpeed"),
                      ({"ACCELERATE_MIXED_PRECISION": "bf16"}, "mixed_precision=bf16")):  # fmt: skip
        with pytest.raises(ConfigError, match=word):
            check_accelerate_env(env)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(sys, "argv", ["tdmr1", "train", "--model", str(sd3_folder), "--out", str(tmp_path / "r")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "FSDP" in err
