"""Cost of one TDM-R1 iteration on an SD3.5-Medium-size transformer (random weights): seconds, peak memory,
images/s and model FLOPs utilisation (MFU) per per-device batch, with and without gradient checkpointing.

What runs is the trainer's own code: :meth:`tdmr1.r1.trainer.TDMR1Trainer.iteration` (4-step rollout
without grad, the black-box reward, the fake-score update, the surrogate update and the generator update,
each followed by its AdamW step, then the generator EMA) with the RL settings of
``configs/scale/sd35m_geneval.yaml`` and the authors' LoRA roles (``sd3-authors``: r32 / alpha64 on the
``attn.`` projections; generator, fake, surrogate, surrogate_old). Only the backbone's edges are replaced,
so that no weights or text encoders are needed:

- the transformer is ``SD3Transformer2DModel`` built from SD3.5-Medium's config (:data:`SD35M`, random
  init; ``--tiny``: a 2-block one) and driven by the real :class:`tdmr1.models.diffusers_backbone.SD3Backbone`
  forward (integer timesteps 999/899/749/499 at the schedule's levels, bf16 autocast, the DPM-Solver++
  4-step schedule; frozen base fp32 or ``--weights bf16``, LoRA and AdamW states fp32); gradient
  checkpointing is the trainer's own switch (``gradient_checkpointing``: diffusers' per-block one with
  ``tdmr1.models.lora.checkpointing.role_checkpoint``; plain checkpointing recomputes with the wrong LoRA role);
- prompts are encoded to fixed random tensors of the real shapes (77 CLIP + ``--text-tokens`` T5 tokens of
  width 4096, pooled 2048): CLIP/T5 cost is not timed (the trainer caches prompts at scale);
- the reward images are the first 3 latent channels (no VAE decode; the reward is the mean brightness):
  a real run adds one VAE decode of the batch and the reward call.

One iteration here is one group of B images (``prompts_per_iteration = minibatch_groups = 1``,
``group_size = per_device_batch = B``): every forward and backward runs at batch B, as one micro-batch of
a multi-GPU run does (B = 1 skips the group-size >= 2 check: a group of one has zero advantage, the work is
the same). Per setting: ``--warmup`` untimed iterations, one iteration under
``torch.utils.flop_counter.FlopCounterMode`` (the counted FLOPs: matmuls, convolutions and attention,
forward and backward, LoRA included; with checkpointing the recomputation too), then ``--repeats`` timed
iterations (median). Model FLOPs = B x the FLOPs counted per image without checkpointing (exactly linear in
B: every token count is fixed); MFU = model FLOPs / median seconds / the card's dense bf16 peak
(:data:`PEAK_BF16`, keyed by ``torch.cuda.get_device_name``, or ``--peak-tflops``); HFU uses the counted
FLOPs (recomputation included). A setting that runs out of memory is recorded as ``oom`` and the next one runs.

Before the runs it prints (and stores as ``memory_estimates_real_size``) the per-process memory estimate of
:mod:`tdmr1.models.memory` for SD3.5-M and Z-Image at the shipped configs' sizes, with and without their
memory switches. Peak memory per setting: ``torch.cuda.max_memory_allocated`` on a GPU (the CPU: the
process's max RSS, which never goes down), and on any device ``saved_for_backward_peak_bytes``, the peak of
the activations one iteration keeps for backward (:func:`saved_activation_peak`), which checkpointing cuts.

    python benchmarks/bench_scale_iteration.py --device cuda            # real size, GPU
    python benchmarks/bench_scale_iteration.py --tiny --device cpu --batches 1,2 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from tdmr1.models.lora.presets import SD35M_TRANSFORMER_CONFIG

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "scale" / "sd35m_geneval.yaml"

#: SD3.5-Medium's transformer config (checked by tests/models/test_scale_lora.py: 382 adapter tensors)
SD35M: dict[str, Any] = SD35M_TRANSFORMER_CONFIG
#: a 2-block transformer of the same class (first block dual-attention), for CPU checks
TINY: dict[str, Any] = dict(
    attention_head_dim=8,
    caption_projection_dim=32,
    in_channels=16,
    joint_attention_dim=32,
    num_attention_heads=4,
    num_layers=2,
    out_channels=16,
    patch_size=2,
    pooled_projection_dim=32,
    pos_embed_max_size=16,
    qk_norm="rms_norm",
    sample_size=8,
    dual_attention_layers=[0],
)
CLIP_TOKENS = 77

#: dense bf16 tensor-core peak (NVIDIA datasheets; half the "with sparsity" figure), matched in order as a
#: substring of torch.cuda.get_device_name(); override with --peak-tflops
PEAK_BF16: list[tuple[str, float]] = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("A100", 312e12),
]

PHASES = ("rollout", "update_fake", "train_surrogate", "update_generator")
#: where each phase runs: (object, method) of a trainer
PHASE_CALLS = {
    "rollout": lambda tr: (tr, "rollout"),
    "update_fake": lambda tr: (tr.update, "fake"),
    "train_surrogate": lambda tr: (tr, "train_surrogate"),
    "update_generator": lambda tr: (tr.update, "generator"),
}


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    """(peak dense bf16 FLOP/s, where it came from) for ``device``."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "none (not a GPU; pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16:
        if key in name:
            return value, f"table ({key})"
    return None, f"none (unknown card {name!r}; pass --peak-tflops)"


def _sd3_backbone_class():
    from tdmr1.models.diffusers_backbone import SCHEDULES, SD3Backbone, check_sigmas

    class RandomTextSD3(SD3Backbone):
        """:class:`SD3Backbone` without VAE and text encoders: prompts map to fixed random embeddings of
        the real shapes; reward images are the first 3 latent channels. ``forward`` is SD3Backbone's own."""

        def __init__(self, transformer: nn.Module, resolution: int, text_tokens: int, mixed_precision: str):
            nn.Module.__init__(self)
            object.__setattr__(self, "pipe", None)
            self.denoiser = transformer
            self.vae = None
            self.text_encoders = nn.ModuleList()
            self.solver, sigmas = SCHEDULES["sd3"]
            self.sigmas = check_sigmas(sigmas)
            self.mixed_precision = mixed_precision
            self.max_sequence_length = text_tokens
            self.integer_timesteps = True  # as the shipped SD3 configs (999, 899, 749, 499 at the schedule)
            self.vae_scale = 8
            self.resolution = resolution
            self.cache_size = 1 << 30
            self._cache = {}

        @torch.no_grad()
        def encode_prompts(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
            """Per prompt, fixed random (embeddings [77 + T, 4096], pooled [2048]) seeded by its text."""
            cfg = self.denoiser.config
            for p in prompts:
                if p not in self._cache:
                    gen = torch.Generator().manual_seed(zlib.crc32(p.encode()))
                    tokens = CLIP_TOKENS + self.max_sequence_length
                    embeds = torch.randn(tokens, cfg.joint_attention_dim, generator=gen)
                    self._cache[p] = (embeds, torch.randn(cfg.pooled_projection_dim, generator=gen))
            text = self._collate([self._cache[p] for p in prompts])
            return text[0].to(self.device), text[1].to(self.device)

        @torch.no_grad()
        def images_uint8(self, latents: Tensor, batch_size: int = 8) -> np.ndarray:
            img = ((latents[:, :3].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            return img.permute(0, 2, 3, 1).cpu().numpy()

    return RandomTextSD3


class LatentBrightness:
    """Mean brightness of the (latent) images: any cheap black-box reward will do for timing."""

    name = "bench-brightness"

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict]):
        from tdmr1.reward_protocol import RewardOutput

        return RewardOutput(images.astype(np.float32).mean(axis=(1, 2, 3)) / 255.0)


def build_trainer(args: argparse.Namespace, batch: int, checkpointing: bool, out_dir: Path):
    """A TDMR1Trainer on a random SD3 transformer; one iteration = one group of ``batch`` images."""
    from diffusers import SD3Transformer2DModel

    from tdmr1.config import load_config
    from tdmr1.r1.scale_config import ScaleRLConfig
    from tdmr1.r1.trainer import TDMR1Trainer
    from tdmr1.rewards.registry import register_reward

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    with torch.device(device):  # initialise on the device: a 2 B-parameter model builds in seconds there
        transformer = SD3Transformer2DModel(**(TINY if args.tiny else SD35M))
    backbone = _sd3_backbone_class()(transformer, args.resolution, args.text_tokens, "bf16")
    register_reward(LatentBrightness.name, LatentBrightness)
    values: dict[str, Any] = {
        "backbone.kind": "sd3",
        "backbone.path": "<random SD3.5-M-size transformer>" if not args.tiny else "<random tiny transformer>",
        "backbone.mixed_precision": "bf16",
        "init_lora": None,
        "prompts": None,
        "reward": LatentBrightness.name,
        "prompts_per_iteration": 1,
        "minibatch_groups": 1,
        "group_size": max(batch, 2),
        "per_device_batch": batch,
        "sur_rank_every": 0,
        "val_every": 0,
        # the trainer's own memory switches: per-block checkpointing recomputed with the role that ran the
        # forward (tdmr1.models.lora.checkpointing), a bf16 frozen base under fp32 LoRA / AdamW states
        "gradient_checkpointing": checkpointing,
        "base_dtype": args.weights,
        "device": args.device,
        "threads": args.threads,
        "seed": args.seed,
    }
    cfg = load_config(ScaleRLConfig, args.config, values=values)
    cfg.group_size = batch  # B = 1: after validation (see the module docstring)
    with mock.patch("tdmr1.models.registry.load_backbone", lambda spec, device="cpu": backbone.to(device)):
        trainer = TDMR1Trainer(cfg, out_dir, quiet=True)
    if hasattr(trainer.system, "set_fast_roles"):  # the real-size path: live peft roles (merged copies are for
        trainer.system.set_fast_roles(False)  # small backbones only), so --tiny runs the same code
    return trainer, transformer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_phases(trainer, device: torch.device, phases: dict[str, float]) -> None:
    """Wrap the iteration's phases so that their (synchronised) seconds add up in ``phases``."""
    for name in PHASES:
        owner, attr = PHASE_CALLS[name](trainer)
        fn = getattr(owner, attr)

        def wrapped(*a, _fn=fn, _name=name, **kw):
            _sync(device)
            t0 = time.perf_counter()
            out = _fn(*a, **kw)
            _sync(device)
            phases[_name] = phases.get(_name, 0.0) + time.perf_counter() - t0
            return out

        setattr(owner, attr, wrapped)


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB; the whole process, since start
    return int(kib) * 1024, "cpu_max_rss"


def saved_activation_peak(trainer) -> int:
    """Peak bytes of the tensors one iteration keeps for backward (autograd's saved tensors, each storage
    once, parameters excluded; released when their graph is freed): the activation memory checkpointing
    cuts, measurable on the CPU too (the process's max RSS never goes down). Checkpointed blocks save
    nothing here; their recomputation during backward (one block at a time) is not counted."""
    import weakref

    params = {p.untyped_storage().data_ptr() for p in trainer.model.denoiser.parameters()}
    live: dict[int, list[int]] = {}
    level = [0, 0]  # now, peak

    class Saved:
        __slots__ = ("t", "__weakref__")

    def release(key: int) -> None:
        entry = live[key]
        entry[1] -= 1
        if entry[1] == 0:
            level[0] -= entry[0]
            del live[key]

    def pack(t: Tensor):
        key = t.untyped_storage().data_ptr()
        if key in params or key == 0:
            return t
        if key in live:
            live[key][1] += 1
        else:
            live[key] = [t.untyped_storage().nbytes(), 1]
            level[0] += live[key][0]
            level[1] = max(level[1], level[0])
        box = Saved()
        box.t = t
        weakref.finalize(box, release, key)
        return box

    def unpack(obj):
        return obj.t if isinstance(obj, Saved) else obj

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        trainer.iteration()
    return int(level[1])


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in str(exc).lower()


def run_setting(args: argparse.Namespace, batch: int, checkpointing: bool, peak: float | None) -> dict[str, Any]:
    """Build, warm up, count FLOPs of one iteration and time ``args.repeats`` iterations of one setting."""
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(args.device)
    row: dict[str, Any] = {"per_device_batch": batch, "gradient_checkpointing": checkpointing}
    trainer = transformer = None
    gc.collect()  # whatever an earlier (failed) setting left
    if device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            trainer, transformer = build_trainer(args, batch, checkpointing, Path(tmp))
            row["build_seconds"] = round(time.perf_counter() - t0, 2)
            for _ in range(args.warmup):
                trainer.iteration()
            counter = FlopCounterMode(display=False)
            with counter:
                trainer.iteration()
            flops = int(counter.get_total_flops())
            by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
            phases: dict[str, float] = {}
            _timed_phases(trainer, device, phases)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            for _ in range(args.repeats):
                _sync(device)
                t1 = time.perf_counter()
                trainer.iteration()
                _sync(device)
                times.append(time.perf_counter() - t1)
            mem, mem_kind = _peak_memory(device)
            row["saved_for_backward_peak_bytes"] = saved_activation_peak(trainer)  # any device
    except Exception as exc:  # noqa: BLE001 - an OOM (or any failure) of one setting must not stop the others
        row["status"] = "oom" if _is_oom(exc) else "error"
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return row
    finally:
        del trainer, transformer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    seconds = statistics.median(times)
    row |= {
        "status": "ok",
        "images_per_iteration": batch,
        "seconds_per_iteration": seconds,
        "seconds_each": times,
        "images_per_second": batch / seconds,
        "phase_seconds": {k: v / len(times) for k, v in phases.items()},
        "peak_memory_bytes": mem,
        "peak_memory_gib": mem / 2**30,
        "peak_memory_kind": mem_kind,
        "counted_flops_per_iteration": flops,  # recomputation included when checkpointing
        "counted_flops_by_op": by_op,
    }
    return row


def add_utilisation(row: dict[str, Any], flops_per_image: int, peak: float | None) -> None:
    """Model FLOPs (B x the per-image count without recomputation), achieved TFLOP/s, MFU and HFU."""
    if row.get("status") != "ok":
        return
    model_flops = row["per_device_batch"] * flops_per_image
    seconds = row["seconds_per_iteration"]
    row["model_flops_per_iteration"] = model_flops
    row["achieved_model_tflops"] = model_flops / seconds / 1e12
    row["mfu"] = model_flops / seconds / peak if peak else None
    row["hfu"] = row["counted_flops_per_iteration"] / seconds / peak if peak else None


def count_flops_per_image(args: argparse.Namespace) -> int:
    """FLOPs of one iteration at batch 1 without checkpointing (model FLOPs are linear in the batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = build_trainer(args, 1, False, Path(tmp))
        counter = FlopCounterMode(display=False)
        with counter:
            trainer.iteration()
    return int(counter.get_total_flops())


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a 2-block transformer (CPU check) instead of SD3.5-M")
    ap.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda[:i]")
    ap.add_argument("--batches", default="1,12,24", help="per-device batches, comma-separated")
    ap.add_argument("--checkpointing", default="off,on", help="gradient checkpointing settings: off, on or both")
    ap.add_argument("--resolution", type=int, default=None, help="image side in pixels (default: 512; tiny: 64)")
    ap.add_argument("--text-tokens", type=int, default=None, help="T5 tokens after CLIP's 77 (default 128; tiny 8)")
    ap.add_argument("--weights", choices=("fp32", "bf16"), default="fp32", help="frozen base weights (base_dtype)")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="RL settings (YAML)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations per setting")
    ap.add_argument("--repeats", type=int, default=2, help="timed iterations per setting (median reported)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: table)")
    ap.add_argument("--max-seconds", type=float, default=None, help="skip the settings left after this wall time")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: benchmarks/results/scale_iteration_*.json)"
    )
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.resolution = args.resolution or (64 if args.tiny else 512)
    args.text_tokens = args.text_tokens or (8 if args.tiny else 128)
    args.batch_list = [int(b) for b in args.batches.split(",") if b.strip()]
    flags = {"off": [False], "on": [True], "both": [False, True], "off,on": [False, True], "on,off": [True, False]}
    if args.checkpointing not in flags or not args.batch_list or min(args.batch_list) < 1:
        ap.error("--batches: positive integers; --checkpointing: off, on, both or off,on")
    args.checkpoint_list = flags[args.checkpointing]
    if args.out is None:
        name = f"scale_iteration_{'tiny' if args.tiny else 'sd35m'}_{args.device.split(':')[0]}.json"
        args.out = ROOT / "benchmarks" / "results" / name
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import diffusers
    import peft

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak, peak_source = peak_flops(device, args.peak_tflops)
    model_cfg = TINY if args.tiny else SD35M
    with torch.device("meta"):
        n_params = sum(p.numel() for p in diffusers.SD3Transformer2DModel(**model_cfg).parameters())
    result: dict[str, Any] = {
        "benchmark": "one TDM-R1 iteration (TDMR1Trainer.iteration) on a random SD3 transformer",
        "model": "tiny" if args.tiny else "SD3.5-Medium transformer config (random init)",
        "transformer_config": model_cfg,
        "transformer_parameters": n_params,
        "lora": "sd3-authors (r32/alpha64, attn.* projections); roles generator, fake, surrogate, surrogate_old",
        "rl_settings": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "resolution": args.resolution,
        "text_tokens": CLIP_TOKENS + args.text_tokens,
        "weights": args.weights,
        "compute": "bf16 autocast",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor()})",
        "peak_bf16_flops": peak,
        "peak_source": peak_source,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "not_timed": "VAE decode and text encoders (random fixed text embeddings; reward on latent channels)",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__},
        "command": " ".join(
            ["python", "benchmarks/bench_scale_iteration.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "runs": [],
    }
    from tdmr1.models.memory import shipped_estimates

    estimates = shipped_estimates()
    result["memory_estimates_real_size"] = [e.as_dict() for e in estimates]
    print("memory estimate per process at real size (before the run; tdmr1.models.memory):", flush=True)
    for e in estimates:
        print("  " + e.line(), flush=True)
    start = time.perf_counter()
    per_image: int | None = None  # model FLOPs of one image's share of an iteration
    for batch in args.batch_list:
        for ckpt in args.checkpoint_list:
            if args.max_seconds is not None and time.perf_counter() - start > args.max_seconds:
                row = {"per_device_batch": batch, "gradient_checkpointing": ckpt, "status": "skipped (time budget)"}
            else:
                row = run_setting(args, batch, ckpt, peak)
            if per_image is None and row["status"] == "ok" and not ckpt:
                per_image = row["counted_flops_per_iteration"] // batch
            result["runs"].append(row)
            _write(args.out, result)  # after every setting: a run cut short still leaves its rows
            print(
                json.dumps({k: v for k, v in row.items() if k not in ("counted_flops_by_op", "seconds_each")}),
                flush=True,
            )
    if per_image is None and any(r["status"] == "ok" for r in result["runs"]):
        per_image = count_flops_per_image(args)
    result["model_flops_per_image"] = per_image
    for row in result["runs"]:
        add_utilisation(row, per_image or 0, peak)
    result["total_seconds"] = time.perf_counter() - start
    _write(args.out, result)
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
