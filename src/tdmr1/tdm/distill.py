"""TDM distillation (data-free, prompts only): teacher -> deterministic K-step student (docs/METHOD.md sec. 3); an
iteration is a student rollout, one student step with grad, the fake-score update, then the generator update."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tdmr1.config import at_least, option, positive, within
from tdmr1.devices import resolve_device
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import ConfigError
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.models.lora.roles import LoraSettings
from tdmr1.pipelines.generate import generate_images
from tdmr1.tdm.student import export_student
from tdmr1.tdm.system import FewStepSystem
from tdmr1.tdm.system_losses import fake_update, generator_loss
from tdmr1.training.ema import TensorEMA
from tdmr1.training.loop import out_of_time, start_run, stops_cleanly, write_config
from tdmr1.training.progress import RunLogger
from tdmr1.training.rng import RunRNG, global_rng_untouched
from tdmr1.training.run_config import RunConfig
from tdmr1.training.state import load_training_state, save_training_state
from tdmr1.training.stops import check_finite
from tdmr1.utils.grid import save_grid
from tdmr1.worlds import get_world


@dataclass
class DistillSettings:
    """TDM distillation of a teacher into a K-step student (LoRA roles `generator` and `fake`)."""

    world: str = option("shapes", "embedded world (its prompts drive the data-free distillation)")
    teacher: str = option("checkpoints/shapes/teacher", "teacher checkpoint folder")
    lora: LoraSettings = option(factory=LoraSettings, doc="adapter shape of both roles")
    student_steps: int = option(4, "student sampling steps K (NFE, no CFG)")
    shift: float = option(3.0, "time shift of the student schedule (4 steps: 1, .9, .75, .5, 0)")
    iterations: int = option(2000, "optimizer steps")
    batch_size: int = option(32, "prompts (one image each) per iteration")
    prompt_source: Literal["captions", "geneval", "mix"] = option(
        "mix", "prompts: web-like captions, GenEval-style training prompts, or half of each"
    )
    cfg: float = option(4.5, "teacher CFG inside the generator direction")
    interval: Literal["tdm", "separate"] = option("tdm", "fake-score noise interval: (t_{j+1}, T] or (t_{j+1}, t_j]")
    lr_generator: float = option(1e-4, "generator AdamW learning rate")
    lr_fake: float = option(5e-4, "fake-score AdamW learning rate (about 5x the generator's)")
    betas_generator: tuple[float, float] = option((0.0, 0.999), "generator AdamW betas")
    betas_fake: tuple[float, float] = option((0.0, 0.999), "fake-score AdamW betas")
    weight_decay: float = option(1e-4, "AdamW weight decay (both roles)")
    fake_base_weight: float = option(0.02, "weight of the fake score's MSE toward the frozen base")
    fake_updates: int = option(1, "fake-score updates per generator update")
    huber_c: float | None = option(None, "pseudo-Huber constant of the generator loss (null = squared error)")
    grad_clip: float = option(1.0, "gradient-norm clip per role")
    ema_decay: float = option(0.99, "generator EMA decay (warm-up min((1+n)/(10+n), decay))")


@dataclass
class DistillConfig(RunConfig, DistillSettings):
    """TDM distillation: its settings, the run options, then how often it logs, saves and samples."""

    checkpoint_every: int = option(100, "resumable state + exported student every N iterations")
    sample_every: int = option(250, "sample grid every N iterations (0 = only at the end)")

    def validate(self) -> None:
        at_least(self, 1, "student_steps iterations batch_size fake_updates checkpoint_every")
        at_least(self, 0, "weight_decay fake_base_weight seed threads log_every sample_every")
        positive(self, "shift lr_generator lr_fake grad_clip huber_c max_minutes")
        at_least(self, 0.0, "cfg")
        within(self, 0.0, 1.0, "ema_decay")
        for key in ("betas_generator", "betas_fake"):
            if not all(0.0 <= b < 1.0 for b in getattr(self, key)):
                raise ConfigError(f"{key} must be two numbers in [0, 1), got {list(getattr(self, key))}")
        positive(self.lora, "alpha", prefix="lora.")


class PromptSampler:
    """Draws prompts for data-free distillation from the world's captions and/or GenEval-style prompts."""

    def __init__(self, world_name: str, source: str, rng: np.random.Generator):
        self.world = get_world(world_name)
        self.source = source
        self.rng = rng
        self.geneval = [md["prompt"] for md in self.world.training_prompts()]

    def __call__(self, n: int) -> list[str]:
        n_geneval = {"captions": 0, "geneval": n, "mix": n // 2}[self.source]
        picks = [self.geneval[i] for i in self.rng.integers(0, len(self.geneval), n_geneval)]
        if n - n_geneval:
            picks += self.world.training_batch(self.rng, n - n_geneval)[1]
        return picks


def distill(cfg: DistillConfig, out_dir: str | Path, resume: bool = True, quiet: bool = False) -> Path:
    """Run TDM distillation into ``out_dir``; returns the exported student folder (``out_dir/model``)."""
    out_dir = Path(out_dir)
    has_state = start_run(cfg, out_dir, resume)
    device = resolve_device(cfg.device)
    teacher = EmbeddedT2I.load(cfg.teacher)
    get_world(cfg.world).check_image_size(teacher.image_shape[1:], f"the teacher {cfg.teacher}")
    with global_rng_untouched(device):  # adapter init: seeded, without consuming the caller's RNG
        torch.manual_seed(cfg.seed)
        system = FewStepSystem(teacher, ["generator", "fake"], cfg.lora, cfg.student_steps, cfg.shift, device)
    opt_g = torch.optim.AdamW(
        system.roles.parameters("generator"),
        lr=cfg.lr_generator,
        betas=cfg.betas_generator,
        weight_decay=cfg.weight_decay,
    )
    opt_f = torch.optim.AdamW(
        system.roles.parameters("fake"), lr=cfg.lr_fake, betas=cfg.betas_fake, weight_decay=cfg.weight_decay
    )
    ema = TensorEMA(system.roles.parameters("generator"), cfg.ema_decay)
    rng = RunRNG(cfg.seed, device)  # every draw of the loop: prompts, noise, step indices, levels
    gen = rng.torch
    prompts_for = PromptSampler(cfg.world, cfg.prompt_source, rng.numpy)
    modules = {"denoiser": teacher.denoiser, "ema": ema, "rng": rng}
    optimizers = {"generator": opt_g, "fake": opt_f}
    step = 0
    if has_state:
        step, _ = load_training_state(out_dir, modules, optimizers)
    write_config(out_dir, cfg)
    uncond_1 = system.encode([""])
    grid_prompts = get_world(cfg.world).grid_prompts()
    student_sampling = SamplingConfig(steps=cfg.student_steps, cfg=1.0, sampler="euler", shift=cfg.shift)
    log = RunLogger(out_dir, total=cfg.iterations, start=step, desc=f"distill {cfg.world}", quiet=quiet)
    k = cfg.student_steps
    t0 = time.time()

    def save() -> None:  # the student first: a kill in between leaves it ahead of the state, never behind
        export_student(system, ema, out_dir / "model", cfg.teacher, student_sampling, {"distilled_iterations": step})
        save_training_state(out_dir, step, modules, optimizers)

    with stops_cleanly(log, "distill", "iteration", lambda: step, cfg.checkpoint_every):
        while step < cfg.iterations:
            if out_of_time(cfg, t0, log, f"iteration {step}"):
                break
            n = cfg.batch_size
            cond = system.encode(prompts_for(n))
            uncond = (uncond_1[0].expand(n, -1, -1), uncond_1[1].expand(n, -1))
            traj = system.rollout(cond, rng.randn(n, *teacher.image_shape))
            j = rng.randint(0, k, (n,))
            x_j = traj.states[j, torch.arange(n, device=device)]
            s_next, s_j = system.sigmas[j + 1], system.sigmas[j]
            s_upper = s_j if cfg.interval == "separate" else torch.ones_like(s_j)
            # one student step with grad; the fake update below sees it detached (fake_update detaches)
            x0_hat, x_next = system.generator_step(x_j, j, cond)
            # (1) fake score on the student's one-step outputs (no grad into the generator)
            for _ in range(cfg.fake_updates):
                loss_f = fake_update(system, x_next, x0_hat, s_next, s_upper, cond, cfg.fake_base_weight, gen)
                check_finite({"loss_fake": loss_f}, "iteration", step + 1)
                opt_f.zero_grad(set_to_none=True)
                loss_f.backward()
                gn_f = torch.nn.utils.clip_grad_norm_(system.roles.parameters("fake"), cfg.grad_clip)
                opt_f.step()
            # (2) generator: the same step, pushed along the teacher-vs-fake direction
            loss_g = generator_loss(system, x0_hat, x_next, s_next, cond, uncond, cfg.cfg, cfg.huber_c, gen)
            check_finite({"loss_gen": loss_g}, "iteration", step + 1)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            gn_g = torch.nn.utils.clip_grad_norm_(system.roles.parameters("generator"), cfg.grad_clip)
            opt_g.step()
            ema.update()
            step += 1
            log.step(
                step,
                {
                    "loss_fake": loss_f.item(),
                    "loss_gen": loss_g.item(),
                    "grad_fake": float(gn_f),
                    "grad_gen": float(gn_g),
                },
                every=cfg.log_every,
            )
            if step % cfg.checkpoint_every == 0:
                save()
            if (cfg.sample_every and step % cfg.sample_every == 0) or step == cfg.iterations:
                ema.swap()
                with system.roles.use("generator"):
                    imgs = generate_images(teacher, grid_prompts, list(range(len(grid_prompts))), student_sampling)
                ema.swap()
                save_grid(imgs, out_dir / "samples" / f"step_{step:06d}.png", labels=grid_prompts)
                log.image("samples", imgs, step)
        if step % cfg.checkpoint_every:  # the last iterations (end or time budget) are saved too
            save()
    log.info(f"distilled to iteration {step} in {time.time() - t0:.0f} s; student at {out_dir / 'model'}")
    return out_dir / "model"
