"""Scale path offline: tiny random SD3 / Z-Image pipelines of the real diffusers classes behind the
FewStepSystem backbone interface (velocity convention, explicit schedules, roles, folder loading)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DPMSolverMultistepScheduler  # noqa: E402

from tdmr1.diffusion.flow import flow_sigmas, uniform_sigmas  # noqa: E402
from tdmr1.diffusion.sampling import sample  # noqa: E402
from tdmr1.errors import CheckpointError, ConfigError  # noqa: E402
from tdmr1.models.diffusers_backbone import (  # noqa: E402
    SD3Backbone,
    ZImageBackbone,
    scheduler_input_sigmas,
)
from tdmr1.models.lora.presets import lora_settings  # noqa: E402
from tdmr1.models.registry import BackboneSpec, detect_kind, images_of, load_backbone, schedule_of  # noqa: E402
from tdmr1.models.tiny import save_tiny_pipeline, tiny_sd3_pipeline, tiny_zimage_pipeline  # noqa: E402
from tdmr1.r1.losses import group_advantages, surrogate_loss, surrogate_target  # noqa: E402
from tdmr1.tdm.system import FewStepSystem  # noqa: E402

PROMPTS = ["a red cube", "two blue spheres left of a cat", "a sign that says cat"]


@pytest.fixture(scope="module")
def sd3():
    return SD3Backbone(tiny_sd3_pipeline(seed=0), resolution=64)


@pytest.fixture(scope="module")
def zimage():
    return ZImageBackbone(tiny_zimage_pipeline(seed=0), resolution=64)


def _noise(model, n=3, seed=0):
    return torch.randn(n, *model.image_shape, generator=torch.Generator().manual_seed(seed))


def test_schedules_are_the_released_ones(sd3, zimage):
    assert sd3.solver == "dpm" and zimage.solver == "euler"
    torch.testing.assert_close(sd3.sigmas, torch.tensor([0.9997, 0.8996, 0.7496, 0.4997, 0.0]), atol=1e-4, rtol=0)
    assert torch.equal(zimage.sigmas, torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))
    assert torch.equal(sd3.sigmas, flow_sigmas(4, 3.0)) and torch.equal(zimage.sigmas, uniform_sigmas(4, 3.0))
    # the trap: Z-Image's pipeline default for 5 steps is another schedule, and explicit sigmas are shifted again
    from diffusers.pipelines.z_image.pipeline_z_image import get_default_z_image_sigmas

    sched = zimage.pipe.scheduler
    sched.set_timesteps(sigmas=get_default_z_image_sigmas(5))
    torch.testing.assert_close(sched.sigmas, torch.tensor([1.0, 0.923, 0.818, 0.667, 0.429, 0.0]), atol=1e-3, rtol=0)
    sched.set_timesteps(sigmas=[1.0, 0.9, 0.75, 0.5])
    assert not torch.allclose(sched.sigmas, zimage.sigmas)
    sched.set_timesteps(sigmas=scheduler_input_sigmas(sched, zimage.sigmas))
    torch.testing.assert_close(sched.sigmas, zimage.sigmas, atol=1e-6, rtol=0)
    with pytest.raises(ConfigError):
        SD3Backbone(tiny_sd3_pipeline(), resolution=64, sigmas=[1.0, 0.5, 0.1])  # must end at 0


def test_interface_shapes_and_cache(sd3, zimage):
    assert sd3.image_shape == (16, 8, 8) and zimage.image_shape == (16, 8, 8)
    emb, pooled = sd3.encode_prompts(PROMPTS)
    assert emb.shape == (3, 77 + 128, 32) and pooled.shape == (3, 32)
    feats, mask = zimage.encode_prompts(PROMPTS + [""])
    assert feats.shape[:2] == mask.shape and mask.dtype == torch.bool
    assert bool((mask.sum(1) > 0).all()) and len(set(mask.sum(1).tolist())) > 1  # unpadded lengths differ
    # cached rows are the same whatever the batch they come in
    again = zimage.encode_prompts([""])
    n = int(again[1].sum())
    torch.testing.assert_close(again[0][0, :n], feats[3, :n])
    assert "" in zimage._cache
    images = images_of(sd3, _noise(sd3, 2))
    assert images.shape == (2, 64, 64, 3) and images.dtype.name == "uint8"


def test_sd3_velocity_and_rollout_match_diffusers(sd3):
    """v = eps - x0: one Euler step from s = 1 to 0 lands on x - v, and the 4-step DPM-Solver++ rollout on
    the released sigmas equals StableDiffusion3Pipeline with the authors' scheduler to 1e-5."""
    text = sd3.encode_prompts(PROMPTS)
    noise = _noise(sd3)
    pipe = sd3.pipe
    kwargs = {"prompt_embeds": text[0], "pooled_prompt_embeds": text[1], "guidance_scale": 1.0}
    kwargs.update(height=64, width=64, output_type="latent")
    one = pipe(sigmas=scheduler_input_sigmas(pipe.scheduler, [1.0, 0.0]), latents=noise.clone(), **kwargs).images
    with torch.no_grad():
        torch.testing.assert_close(one, noise - sd3(noise, torch.ones(3), text), atol=1e-5, rtol=0)
    euler_sig = uniform_sigmas(4, 3.0)
    ref = pipe(sigmas=scheduler_input_sigmas(pipe.scheduler, euler_sig), latents=noise.clone(), **kwargs).images
    with torch.no_grad():
        ours = sample(lambda x, s: sd3(x, s, text), noise, euler_sig, solver="euler").final
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    euler_scheduler = pipe.scheduler
    pipe.scheduler = DPMSolverMultistepScheduler(
        use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0
    )
    try:
        ref = pipe(num_inference_steps=4, latents=noise.clone(), **kwargs).images
        assert torch.equal(pipe.scheduler.sigmas.float(), sd3.sigmas)
    finally:
        pipe.scheduler = euler_scheduler
    with torch.no_grad():
        ours = sample(lambda x, s: sd3(x, s, text), noise, sd3.sigmas, solver=sd3.solver).final
        assert float((ours - ref).abs().max()) > 1e-4  # the DPM scheduler feeds int(1000 sigma) = 999, 899, ...
        sd3.integer_timesteps = True
        try:
            ours = sample(lambda x, s: sd3(x, s, text), noise, sd3.sigmas, solver=sd3.solver).final
        finally:
            sd3.integer_timesteps = False
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_zimage_velocity_and_rollout_match_diffusers(zimage):
    """Z-Image's transformer takes t = 1 - s and returns x0 - eps; the wrapper's v = eps - x0 reproduces
    ZImagePipeline (no CFG) on the explicit [1, .9, .75, .5, 0] to 1e-5."""
    text = zimage.encode_prompts(PROMPTS)
    feats = [f[m] for f, m in zip(*text, strict=True)]
    noise = _noise(zimage)
    pipe = zimage.pipe
    kwargs = {"prompt_embeds": feats, "guidance_scale": 0.0, "height": 64, "width": 64, "output_type": "latent"}
    one = pipe(sigmas=scheduler_input_sigmas(pipe.scheduler, [1.0, 0.0]), latents=noise.clone(), **kwargs).images
    with torch.no_grad():
        v = zimage(noise, torch.ones(3), text)
        raw = zimage.denoiser(list(noise.unsqueeze(2).unbind(0)), torch.zeros(3), feats, return_dict=False)[0]
    torch.testing.assert_close(one, noise - v, atol=1e-5, rtol=0)
    torch.testing.assert_close(v, -torch.stack(raw).squeeze(2), atol=0, rtol=0)  # the sign flip, at t = 1 - 1 = 0
    ref = pipe(sigmas=scheduler_input_sigmas(pipe.scheduler, zimage.sigmas), latents=noise.clone(), **kwargs).images
    with torch.no_grad():
        ours = sample(lambda x, s: zimage(x, s, text), noise, zimage.sigmas, solver=zimage.solver).final
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["sd3", "zimage"])
def test_tdm_r1_step_through_roles_trains_adapters_only(kind):
    """Fresh adapters are bit-identical to the base; one TDM-R1-style surrogate + generator
    forward/backward through the roles puts gradients on those two adapters and nowhere else."""
    torch.manual_seed(0)
    model = {"sd3": SD3Backbone, "zimage": ZImageBackbone}[kind](
        {"sd3": tiny_sd3_pipeline, "zimage": tiny_zimage_pipeline}[kind](seed=1), resolution=64
    )
    text = model.encode_prompts(PROMPTS[:2] * 2)
    noise = _noise(model, 4)
    with torch.no_grad():
        s = torch.full((4,), 0.7)
        v_before = model(noise, s, text)
    roles = ["generator", "fake", "surrogate", "surrogate_old"]
    preset = f"{kind}-authors"
    system = FewStepSystem(model, roles, lora_settings(preset, rank=4, alpha=8.0), steps=4)
    system.sigmas, solver = schedule_of(model, 4, 3.0)  # the one-line change the trainer needs
    assert solver == model.solver
    with torch.no_grad():
        for role in ["base", *roles]:
            assert torch.equal(system.velocity(role, noise, s, text), v_before)
    names = {n for n, _ in model.denoiser.named_parameters()}
    assert not any(".attn2." in n and "lora" in n for n in names)  # the attn.-prefixed preset skips attn2
    assert not any(".ff." in n and "lora" in n for n in names)
    with torch.no_grad():  # make B non-zero: A gets gradients too and fake differs from base
        for p in [p for r in ("generator", "fake", "surrogate") for p in system.roles.parameters(r)]:
            p.add_(0.01 * torch.randn_like(p))
        traj = system.rollout(text, noise)
    assert traj.states.shape == (5, 4, *model.image_shape)
    # surrogate: per-step target + group Bradley-Terry loss
    group = torch.tensor([0, 0, 1, 1])
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group)
    k = torch.tensor([2, 2, 3, 3])
    tau = torch.tensor([0.8, 0.8, 0.9, 0.9])
    x_tau, v_star = surrogate_target(traj.states[k, torch.arange(4)], system.sigmas[k], torch.randn_like(noise), tau)
    d = (v_star - system.velocity("surrogate", x_tau, tau, text)).pow(2).mean((1, 2, 3))
    with torch.no_grad():
        d_ref = (v_star - system.velocity("base", x_tau, tau, text)).pow(2).mean((1, 2, 3))
    loss_sur, _ = surrogate_loss(d, d_ref, adv, group, beta=1.0)
    # generator: one student step with grad, regressed on a detached fake/base direction
    j = torch.tensor([0, 1, 2, 3])
    x0_hat, _ = system.generator_step(traj.states[j, torch.arange(4)], j, text)
    with torch.no_grad():
        direction = system.x0("base", x0_hat, torch.full((4,), 0.5), text) - system.x0(
            "fake", x0_hat, torch.full((4,), 0.5), text
        )
    loss_gen = (x0_hat - (x0_hat + direction).detach()).pow(2).mean()
    (loss_sur + loss_gen).backward()
    trained = {id(p) for role in ("generator", "surrogate") for p in system.roles.parameters(role)}
    for name, p in model.named_parameters():
        if id(p) in trained:
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        else:
            assert p.grad is None, f"{name} got a gradient"
    for role in ("generator", "surrogate"):
        dead = [n for n, p in system.roles._named(role) if float(p.grad.abs().sum()) == 0]
        # SD3's last block is context_pre_only: its context queries only feed a discarded output
        assert all(".transformer_blocks.1.attn.add_q_proj." in "." + n for n in dead), dead


def test_load_backbone_dispatches_on_folder_contents(tmp_path, tiny_teacher):
    sd3_dir = save_tiny_pipeline("sd3", tmp_path / "sd3")
    assert detect_kind(sd3_dir) == "sd3" and detect_kind(tiny_teacher) == "embedded"
    model = load_backbone(BackboneSpec(path=str(sd3_dir), resolution=64))
    assert isinstance(model, SD3Backbone) and model.image_shape == (16, 8, 8)
    assert tuple(model.default_lora_targets) == tuple(lora_settings("sd3-authors").target_modules)
    embedded = load_backbone(str(tiny_teacher))
    assert type(embedded).__name__ == "EmbeddedT2I"
    sig, solver = schedule_of(embedded, 4, 3.0)
    assert solver == "euler" and torch.equal(sig, uniform_sigmas(4, 3.0))
    with pytest.raises(CheckpointError, match="holds a sd3 model"):
        load_backbone(BackboneSpec(kind="zimage", path=str(sd3_dir)))
    with pytest.raises(CheckpointError, match="not found"):
        load_backbone(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="neither"):
        load_backbone(tmp_path)
    with pytest.raises(CheckpointError, match="expected a ZImagePipeline"):
        ZImageBackbone.from_pretrained(sd3_dir)


@pytest.mark.parametrize("kind", ["sd3", "zimage"])
def test_two_rl_iterations_with_a_black_box_reward(kind):
    """Rollout on the explicit schedule -> VAE decode -> a black-box numpy reward -> group advantages ->
    surrogate (Bradley-Terry) and generator updates with one AdamW per role, twice. Only the trained
    adapters move; the base stays put."""
    torch.manual_seed(0)
    builder = {"sd3": (SD3Backbone, tiny_sd3_pipeline), "zimage": (ZImageBackbone, tiny_zimage_pipeline)}[kind]
    model = builder[0](builder[1](seed=2), resolution=64)
    system = FewStepSystem(model, ["generator", "fake", "surrogate"], lora_settings(f"{kind}-authors", 4, 8.0))
    system.sigmas, solver = schedule_of(model, 4, 3.0)
    base_before = {n: p.detach().clone() for n, p in model.denoiser.named_parameters() if "lora_" not in n}
    gen_before = [p.detach().clone() for p in system.roles.parameters("generator")]
    opt = {r: torch.optim.AdamW(system.roles.parameters(r), lr=1e-3) for r in ("generator", "surrogate")}

    def reward(images):  # black box: numpy in, numpy out (redness)
        return images[..., 0].mean(axis=(1, 2)) / 255.0 - images[..., 1:].mean(axis=(1, 2, 3)) / 255.0

    group = torch.tensor([0, 0, 1, 1])
    for _ in range(2):
        text = system.encode(["a red cube", "a red cube", "a blue sphere", "a blue sphere"])
        with torch.no_grad(), system.roles.use("generator"):
            traj = sample(lambda x, s, c=text: model(x, s, c), system.randn(4), system.sigmas, solver=solver)
        scores = torch.from_numpy(reward(images_of(model, traj.final))).float()
        adv = group_advantages(scores, group)
        k = torch.tensor([2, 2, 3, 3])
        tau = torch.tensor([0.8, 0.8, 0.9, 0.9])
        x_tau, v_star = surrogate_target(traj.states[k, torch.arange(4)], system.sigmas[k], system.randn(4), tau)
        d = (v_star - system.velocity("surrogate", x_tau, tau, text)).pow(2).mean((1, 2, 3))
        with torch.no_grad():
            d_ref = (v_star - system.velocity("base", x_tau, tau, text)).pow(2).mean((1, 2, 3))
        surrogate_loss(d, d_ref, adv, group, beta=1.0)[0].backward()
        j = torch.tensor([0, 1, 2, 3])
        x0_hat, _ = system.generator_step(traj.states[j, torch.arange(4)], j, text)
        with torch.no_grad():
            target = system.x0("surrogate", x0_hat, torch.full((4,), 0.6), text)
        (x0_hat - target).pow(2).mean().backward()
        for o in opt.values():
            o.step()
            o.zero_grad(set_to_none=True)
    assert all(torch.equal(p, base_before[n]) for n, p in model.denoiser.named_parameters() if "lora_" not in n)
    assert any(not torch.equal(a, b) for a, b in zip(system.roles.parameters("generator"), gen_before, strict=True))
    assert all(bool(torch.isfinite(p).all()) for p in system.roles.parameters("generator"))


def test_bf16_autocast_keeps_fp32_weights_and_output(sd3):
    text = sd3.encode_prompts(PROMPTS)
    x, s = _noise(sd3), torch.tensor([0.9, 0.5, 0.2])
    with torch.no_grad():
        v32 = sd3(x, s, text)
        sd3.mixed_precision = "bf16"
        try:
            v16 = sd3(x, s, text)
        finally:
            sd3.mixed_precision = "no"
    assert v16.dtype == torch.float32 and next(sd3.denoiser.parameters()).dtype == torch.float32
    assert not torch.equal(v16, v32)
    torch.testing.assert_close(v16, v32, atol=0.05, rtol=0.05)
