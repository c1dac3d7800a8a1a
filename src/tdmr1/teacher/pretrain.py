"""Teacher pretraining: rectified-flow training of the embedded model on a world's captioned images."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tdmr1.config import at_least, option, positive, to_dict, within
from tdmr1.devices import resolve_device
from tdmr1.diffusion.flow import add_noise, sample_logit_normal, velocity_from_x0_eps
from tdmr1.diffusion.images import from_uint8
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import ConfigError
from tdmr1.models.embedded import BackboneConfig, EmbeddedT2I
from tdmr1.models.tokenizer import WordTokenizer
from tdmr1.pipelines.generate import generate_images
from tdmr1.training.ema import EMA
from tdmr1.training.loop import out_of_time, start_run, stops_cleanly, write_config
from tdmr1.training.progress import RunLogger
from tdmr1.training.rng import RunRNG, global_rng_untouched
from tdmr1.training.run_config import RunConfig
from tdmr1.training.state import load_training_state, save_training_state
from tdmr1.training.stops import check_finite
from tdmr1.utils.grid import save_grid
from tdmr1.worlds import get_world


@dataclass
class PretrainSettings:
    """What teacher pretraining learns and how (flow matching with caption dropout for CFG, logit-normal t, EMA)."""

    world: str = option("shapes", "embedded world whose captioned images are the training data")
    backbone: BackboneConfig = option(factory=BackboneConfig, doc="denoiser and text encoder shape")
    sampling: SamplingConfig = option(factory=SamplingConfig, doc="recommended sampling, saved in the model")
    steps: int = option(20000, "optimizer steps")
    batch_size: int = option(64, "images per step")
    lr: float = option(3e-4, "AdamW learning rate (after warm-up)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    warmup_steps: int = option(200, "linear learning-rate warm-up")
    grad_clip: float = option(1.0, "gradient-norm clip")
    caption_dropout: float = option(0.1, "probability of training on the empty prompt (enables CFG)")
    t_mean: float = option(0.0, "logit-normal timestep mean")
    t_std: float = option(1.0, "logit-normal timestep std")
    ema_decay: float = option(0.999, "EMA decay of the exported weights")


@dataclass
class PretrainConfig(RunConfig, PretrainSettings):
    """Teacher pretraining: its settings, the run options, then how often it logs, saves and samples."""

    log_every: int = option(20, "TensorBoard scalars every N steps")
    checkpoint_every: int = option(250, "resumable state + exported EMA model every N steps")
    snapshot_every: int = option(1000, "keep an EMA snapshot every N steps (for learning curves; 0 = off)")
    sample_every: int = option(1000, "sample grid PNG every N steps (0 = only at the end)")

    def validate(self) -> None:
        at_least(self, 1, "steps batch_size checkpoint_every")
        at_least(self, 0, "weight_decay warmup_steps seed threads log_every snapshot_every sample_every")
        positive(self, "lr grad_clip t_std max_minutes")
        within(self, 0.0, 1.0, "caption_dropout", high_open=True)
        within(self, 0.0, 1.0, "ema_decay")


def world_backbone(backbone: BackboneConfig, world_name: str) -> BackboneConfig:
    """``backbone`` with the world's image size filled in (0 = unset); ConfigError when it was set to
    another size."""
    world = get_world(world_name)
    h, w = world.image_size
    if (backbone.image_height, backbone.image_width) not in ((0, 0), (h, w)):
        raise ConfigError(
            f"backbone image size {backbone.image_height}x{backbone.image_width} differs from world "
            f"{world_name!r}'s {h}x{w} images (height x width): leave backbone.image_height/width unset"
        )
    return dataclasses.replace(backbone, image_height=h, image_width=w)


def build_model(cfg: PretrainConfig) -> EmbeddedT2I:
    world = get_world(cfg.world)
    tokenizer = WordTokenizer(world.vocabulary(), max_length=cfg.backbone.max_tokens, mode=world.tokenizer_mode)
    longest = max((len(tokenizer.split(md["prompt"])) + 1 for md in world.benchmark_suite()), default=0)  # + BOS
    if longest > tokenizer.max_length:
        raise ConfigError(
            f"world {cfg.world!r} has prompts of {longest} tokens but backbone.max_tokens is {tokenizer.max_length}"
        )
    meta = {"world": cfg.world, "sampling": to_dict(cfg.sampling)}
    if world.spec:
        meta["world_spec"] = world.spec
    return EmbeddedT2I(world_backbone(cfg.backbone, cfg.world), tokenizer, meta)


def flow_matching_loss(
    model: EmbeddedT2I, x0: torch.Tensor, captions: list[str], s: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """MSE between the predicted and the true velocity eps - x0 at x_s."""
    x_s = add_noise(x0, eps, s)
    v = model(x_s, s, model.encode_prompts(captions))
    return F.mse_loss(v, velocity_from_x0_eps(x0, eps))


def pretrain(cfg: PretrainConfig, out_dir: str | Path, resume: bool = True, quiet: bool = False) -> Path:
    """Train a teacher into ``out_dir``; returns the folder of the exported EMA model (``out_dir/model``)."""
    out_dir = Path(out_dir)
    has_state = start_run(cfg, out_dir, resume)
    world = get_world(cfg.world)
    device = resolve_device(cfg.device)
    with global_rng_untouched(device):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg).to(device)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = RunRNG(cfg.seed, device)  # every draw of the loop: data, caption dropout, levels, noise
    modules = {"model": model, "ema": ema, "rng": rng}
    step = 0
    if has_state:
        step, _ = load_training_state(out_dir, modules, {"opt": opt})
    write_config(out_dir, cfg)
    grid_prompts = world.grid_prompts()
    grid_seeds = list(range(len(grid_prompts)))
    log = RunLogger(out_dir, total=cfg.steps, start=step, desc=f"pretrain {cfg.world}", quiet=quiet)
    t_start = time.time()

    def save() -> None:  # the model first: a kill in between leaves it ahead of the state, never behind
        ema.model.meta["trained_steps"] = step
        ema.model.save(out_dir / "model")
        save_training_state(out_dir, step, modules, {"opt": opt})

    with stops_cleanly(log, "pretrain", "step", lambda: step, cfg.checkpoint_every):
        while step < cfg.steps:
            if out_of_time(cfg, t_start, log, f"step {step}"):
                save()
                break
            images, captions = world.training_batch(rng.numpy, cfg.batch_size)
            drop = rng.numpy.random(len(captions)) < cfg.caption_dropout
            captions = ["" if d else c for c, d in zip(captions, drop, strict=True)]
            x0 = from_uint8(images, cfg.backbone.channels).to(device)
            s = sample_logit_normal(len(captions), cfg.t_mean, cfg.t_std, generator=rng.torch, device=device)
            loss = flow_matching_loss(model, x0, captions, s, rng.randn_like(x0))
            check_finite({"loss": loss}, "step", step + 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
            opt.step()
            ema.update(model)
            step += 1
            log.step(step, {"loss": loss.item(), "grad_norm": float(grad_norm)}, every=cfg.log_every)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save()
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                ema.model.save(out_dir / "snapshots" / f"step_{step:06d}")
            if (cfg.sample_every and step % cfg.sample_every == 0) or step == cfg.steps:
                imgs = generate_images(ema.model, grid_prompts, grid_seeds, cfg.sampling)
                save_grid(imgs, out_dir / "samples" / f"step_{step:06d}.png", labels=grid_prompts)
                log.image("samples", imgs, step)
    log.info(f"trained to step {step} in {time.time() - t_start:.0f} s; EMA model at {out_dir / 'model'}")
    return out_dir / "model"
