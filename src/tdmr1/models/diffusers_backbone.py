"""Scale-path backbones, SD3.5 and Z-Image from a local diffusers pipeline folder, behind the embedded model's
interface (``forward(x, s, text) -> v`` on latents, ``encode_prompts``, ``denoiser``, ``sigmas``), so the few-step
system runs them unchanged (the interface and both models' conventions: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tdmr1.diffusion.flow import flow_sigmas, uniform_sigmas
from tdmr1.errors import CheckpointError, ConfigError
from tdmr1.models.lora.presets import SD3_AUTHORS_TARGETS, ZIMAGE_AUTHORS_TARGETS

Text = tuple[Tensor, Tensor]

#: The released few-step schedules. SD3.5-M TDM: DPM-Solver++ 2M on diffusers' flow sigmas, shift 3,
#: 4 steps = [.9997, .8996, .7496, .4997, 0]. Z-Image TDM-R1: Euler on [1, .9, .75, .5, 0] (shift 3 of a
#: uniform grid). diffusers 0.42's ZImagePipeline with num_inference_steps=5 gives
#: [1, .923, .818, .667, .429, 0] instead, and FlowMatchEulerDiscreteScheduler shifts *explicit* sigmas
#: again: use :func:`scheduler_input_sigmas` to drive a diffusers pipeline to exactly these levels.
SCHEDULES: dict[str, tuple[str, Tensor]] = {
    "sd3": ("dpm", flow_sigmas(4, shift=3.0)),
    "zimage": ("euler", uniform_sigmas(4, shift=3.0)),
}

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_sigmas(sigmas: Sequence[float] | Tensor) -> Tensor:
    """An explicit schedule as float32: strictly decreasing, in [0, 1], ending at exactly 0."""
    sig = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
    if sig.numel() < 2:
        raise ConfigError(f"sigmas: need at least 2 levels, got {sig.tolist()}")
    if bool(((sig < 0) | (sig > 1)).any()) or not bool((sig[1:] < sig[:-1]).all()) or float(sig[-1]) != 0.0:
        raise ConfigError(f"sigmas must decrease strictly from <= 1 to exactly 0, got {sig.tolist()}")
    return sig


def scheduler_input_sigmas(scheduler, sigmas: Sequence[float] | Tensor, mu: float | None = None) -> list[float]:
    """What to pass as ``sigmas=`` to a diffusers flow pipeline so that its scheduler runs exactly on
    ``sigmas`` (our K+1 levels ending at 0): the trailing 0 dropped and the scheduler's own shift inverted
    (``FlowMatchEulerDiscreteScheduler.set_timesteps`` shifts explicit sigmas too)."""
    sig = check_sigmas(sigmas).double()[:-1]
    cfg = scheduler.config
    if cfg.get("use_dynamic_shifting", False):
        if mu is None:
            raise ConfigError("this scheduler shifts by resolution (use_dynamic_shifting): pass mu")
        e = float(np.exp(mu))
        u = 1.0 / (1.0 + e * (1.0 / sig - 1.0))  # inverse of exp(mu) / (exp(mu) + (1/u - 1))
    else:
        shift = float(cfg.get("shift", 1.0))
        u = sig / (shift - (shift - 1.0) * sig)
    return u.tolist()


class DiffusersBackbone(nn.Module):
    """Common part of the scale-path backbones (see the module docstring)."""

    kind = "diffusers"
    pipeline_class = ""
    default_lora_targets: tuple[str, ...] = ()

    def __init__(
        self,
        pipe,
        *,
        resolution: int | None = None,
        sigmas: Sequence[float] | Tensor | None = None,
        solver: str | None = None,
        mixed_precision: str = "no",
        text_dtype: str = "fp32",
        max_sequence_length: int | None = None,
        cache_size: int = 4096,
    ):
        super().__init__()
        if pipe.__class__.__name__ != self.pipeline_class:
            raise ConfigError(f"{self.kind} backbone needs a {self.pipeline_class}, got {pipe.__class__.__name__}")
        object.__setattr__(self, "pipe", pipe)  # not a submodule: its modules are registered below
        self.denoiser = pipe.transformer
        self.vae = pipe.vae
        self.text_encoders = nn.ModuleList(self._text_modules(pipe))
        default_solver, default_sigmas = SCHEDULES[self.kind]
        self.solver = solver or default_solver
        if self.solver not in ("euler", "dpm"):
            raise ConfigError(f"solver must be euler or dpm, got {self.solver!r}")
        self.sigmas = check_sigmas(default_sigmas if sigmas is None else sigmas)
        if mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {mixed_precision!r}")
        self.mixed_precision = mixed_precision
        if text_dtype not in DTYPES:
            raise ConfigError(f"text_dtype must be one of {', '.join(DTYPES)}, got {text_dtype!r}")
        _to_dtype(self.text_encoders, DTYPES[text_dtype])
        _to_dtype(self.vae, torch.float32)
        _to_dtype(self.denoiser, torch.float32)  # fp32 master weights; bf16 compute under autocast
        self.max_sequence_length = max_sequence_length
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.resolution = int(resolution or self._default_resolution())
        multiple = self.vae_scale * self._patch()
        if self.resolution % multiple:
            raise ConfigError(f"resolution {self.resolution} must be a multiple of {multiple} for this model")
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()

    # ---- pieces the subclasses define ---------------------------------------------------------
    def _text_modules(self, pipe) -> list[nn.Module]:
        raise NotImplementedError

    def _default_resolution(self) -> int:
        raise NotImplementedError

    def _patch(self) -> int:
        return 2

    def _encode_uncached(self, prompts: list[str], device: torch.device) -> list[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def _collate(self, rows: list[tuple[Tensor, Tensor]]) -> Text:
        raise NotImplementedError

    def _velocity(self, x: Tensor, s: Tensor, text: Text) -> Tensor:
        raise NotImplementedError

    # ---- the backbone interface ---------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.vae_scale
        return (int(self.denoiser.config.in_channels), side, side)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def _autocast(self):
        if self.mixed_precision == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.mixed_precision])

    def forward(self, x: Tensor, s: Tensor, text: Text) -> Tensor:
        """Velocity ``eps - x0`` (float32) at latents ``x`` [N, C, h, w] and levels ``s`` (scalar or [N])."""
        s = torch.as_tensor(s, dtype=torch.float32, device=x.device)
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
        with self._autocast():
            v = self._velocity(x, s, text)
        return v.float()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Text:
        """Text conditioning of ``prompts`` on the denoiser's device (cached per prompt on the CPU)."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            te_device = next(self.text_encoders.parameters()).device
            for prompt, row in zip(missing, self._encode_uncached(missing, te_device), strict=True):
                self._cache[prompt] = (row[0].detach().cpu(), row[1].detach().cpu())
        for p in prompts:
            self._cache.move_to_end(p)
        rows = [self._cache[p] for p in prompts]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        text = self._collate(rows)
        device = self.device
        return (text[0].to(device), text[1].to(device))

    def cache_prompts(self, prompts: Sequence[str], batch_size: int = 32) -> None:
        """Encode ``prompts`` once (e.g. the whole training pool) so the text encoders can be offloaded."""
        self.cache_size = max(self.cache_size, len(set(prompts)) + 1)
        for i in range(0, len(prompts), batch_size):
            self.encode_prompts(list(prompts[i : i + batch_size]))

    def offload_text_encoders(self, device: str | torch.device = "cpu") -> None:
        """Move the text encoders off the accelerator (cached prompts need no encoder)."""
        self.text_encoders.to(device)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Latents -> pixels [N, 3, H, W] in [-1, 1] (float32 VAE, as the authors)."""
        cfg = self.vae.config
        z = latents.float() / cfg.scaling_factor + (cfg.shift_factor or 0.0)
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0].float().clamp(-1, 1)

    @torch.no_grad()
    def images_uint8(self, latents: Tensor, batch_size: int = 8) -> np.ndarray:
        """Latents -> NHWC uint8 RGB images (what rewards take)."""
        out = []
        for i in range(0, latents.shape[0], batch_size):
            img = ((self.decode(latents[i : i + batch_size]) + 1) * 127.5).round().to(torch.uint8)
            out.append(img.permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 3), np.uint8)

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> DiffusersBackbone:
        """Load from a local pipeline folder (never downloads)."""
        import diffusers

        path = Path(path)
        check_pipeline_folder(path, cls.pipeline_class)
        pipe_cls = getattr(diffusers, cls.pipeline_class, None)
        if pipe_cls is None:
            raise ConfigError(f"diffusers {diffusers.__version__} has no {cls.pipeline_class}; upgrade diffusers")
        try:
            pipe = pipe_cls.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot load {cls.pipeline_class} ({str(exc).splitlines()[0]})") from None
        return cls(pipe, **kwargs)


def _to_dtype(module: nn.Module, dtype: torch.dtype) -> None:
    if any(p.dtype != dtype for p in module.parameters() if p.is_floating_point()):
        module.to(dtype)


def pipeline_class_of(path: str | Path) -> str | None:
    """``_class_name`` of a local diffusers pipeline folder's ``model_index.json`` (None if absent)."""
    import json

    index = Path(path) / "model_index.json"
    if not index.is_file():
        return None
    try:
        return str(json.loads(index.read_text())["_class_name"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{index}: unreadable model_index.json") from None


def check_pipeline_folder(path: Path, expected: str) -> None:
    if not path.is_dir():
        raise CheckpointError(f"model folder not found: {path}")
    found = pipeline_class_of(path)
    if found is None:
        raise CheckpointError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
    if found != expected:
        raise CheckpointError(f"{path} holds a {found}, expected a {expected}")


class SD3Backbone(DiffusersBackbone):
    """SD3 / SD3.5 (``StableDiffusion3Pipeline``); text = (prompt_embeds [N, 77 + T, D], pooled [N, P])."""

    kind = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    default_lora_targets = SD3_AUTHORS_TARGETS

    def __init__(self, pipe, *, integer_timesteps: bool = False, **kwargs):
        kwargs.setdefault("max_sequence_length", 128)
        super().__init__(pipe, **kwargs)
        #: at the schedule's levels feed floor(1000 s) like DPMSolverMultistepScheduler(use_flow_sigmas) does
        #: (its timesteps are int(1000 sigma): 999, 899, 749, 499 for sigmas .9997, .8996, .7496, .4997);
        #: every other level (the training's tau draws, floats in the authors' trainer too) gets 1000 s.
        #: Off: 1000 s everywhere (FlowMatchEulerDiscreteScheduler's convention)
        self.integer_timesteps = integer_timesteps

    def _text_modules(self, pipe) -> list[nn.Module]:
        return [m for m in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3) if m is not None]

    def _default_resolution(self) -> int:
        return int(self.denoiser.config.sample_size) * self.vae_scale

    def _patch(self) -> int:
        return int(self.denoiser.config.patch_size)

    def _encode_uncached(self, prompts: list[str], device: torch.device) -> list[tuple[Tensor, Tensor]]:
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt=list(prompts),
            prompt_2=None,
            prompt_3=None,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return [(embeds[i], pooled[i]) for i in range(len(prompts))]

    def _collate(self, rows: list[tuple[Tensor, Tensor]]) -> Text:
        return torch.stack([r[0] for r in rows]).float(), torch.stack([r[1] for r in rows]).float()

    def _velocity(self, x: Tensor, s: Tensor, text: Text) -> Tensor:
        embeds, pooled = text
        t = s * 1000.0
        if self.integer_timesteps:
            t = torch.where(self._on_schedule(s), torch.floor(t), t)
        return self.denoiser(
            hidden_states=x,
            timestep=t,
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            return_dict=False,
        )[0]

    def _on_schedule(self, s: Tensor) -> Tensor:
        """[N] bool: which levels are (to float rounding) one of the few-step schedule's."""
        sig = self.sigmas.to(device=s.device, dtype=s.dtype)
        return (s.unsqueeze(1) - sig.unsqueeze(0)).abs().amin(dim=1) < 1e-6


class ZImageBackbone(DiffusersBackbone):
    """Z-Image / Z-Image-Turbo (``ZImagePipeline``); text = (features [N, L, D] zero-padded, mask [N, L])."""

    kind = "zimage"
    pipeline_class = "ZImagePipeline"
    default_lora_targets = ZIMAGE_AUTHORS_TARGETS

    def __init__(self, pipe, **kwargs):
        kwargs.setdefault("max_sequence_length", 512)
        super().__init__(pipe, **kwargs)

    def _text_modules(self, pipe) -> list[nn.Module]:
        return [pipe.text_encoder]

    def _default_resolution(self) -> int:
        return 1024

    def _patch(self) -> int:
        return int(self.denoiser.config.all_patch_size[0])

    def _encode_uncached(self, prompts: list[str], device: torch.device) -> list[tuple[Tensor, Tensor]]:
        # _encode_prompt rewrites its list in place (chat template): hand it a copy
        feats = self.pipe._encode_prompt(
            prompt=list(prompts), device=device, max_sequence_length=self.max_sequence_length
        )
        return [(f, torch.ones(f.shape[0], dtype=torch.bool)) for f in feats]

    def _collate(self, rows: list[tuple[Tensor, Tensor]]) -> Text:
        longest = max(r[0].shape[0] for r in rows)
        width = rows[0][0].shape[1]
        feats = torch.zeros(len(rows), longest, width)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, (f, _) in enumerate(rows):
            feats[i, : f.shape[0]] = f.float()
            mask[i, : f.shape[0]] = True
        return feats, mask

    def _velocity(self, x: Tensor, s: Tensor, text: Text) -> Tensor:
        feats, mask = text
        caps = [f[m.bool()] for f, m in zip(feats, mask, strict=True)]
        out = self.denoiser(list(x.unsqueeze(2).unbind(0)), 1.0 - s, caps, return_dict=False)[0]
        return -torch.stack([o.float() for o in out]).squeeze(2)


BACKBONES: dict[str, type[DiffusersBackbone]] = {"sd3": SD3Backbone, "zimage": ZImageBackbone}
