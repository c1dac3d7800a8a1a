"""`tdmr1 sample` and `tdmr1 eval`: embedded checkpoints, or a scale backbone with ``--backbone sd3|zimage
--model DIR`` (:mod:`tdmr1.cli.scale_cmd`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tdmr1.cli.messages import warn
from tdmr1.config import from_dict
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.utils.io import atomic_write_text
from tdmr1.utils.outputs import check_writable_file, prepare_results_dir

console = Console()


def _sampling(
    model_meta: dict, steps: int | None, cfg: float | None, sampler: str | None, shift: float | None
) -> SamplingConfig:
    """Checkpoint's recommended sampling, overridden by whatever the user gave."""
    base = dict(model_meta.get("sampling", {}))
    for key, value in (("steps", steps), ("cfg", cfg), ("sampler", sampler), ("shift", shift)):
        if value is not None:
            base[key] = value
    return from_dict(SamplingConfig, base)


DEVICE_HELP = "auto (CUDA when present), cpu or cuda[:i]"


BACKBONE_HELP = "scale path: sd3 or zimage (with --model; default: detected from the folder)"


MODEL_HELP = "scale path: local diffusers pipeline folder (nothing is downloaded)"


LORA_HELP = "scale path: generator adapter (a `tdmr1 train` export folder, a named .safetensors or an order-only .ckpt)"


INIT_LORA_HELP = "scale path: the authors' TDM LoRA (.ckpt, order-only) as the generator"


RESOLUTION_HELP = "scale path: image side in pixels (default: the adapter's, else the backbone's)"


PRECISION_HELP = "scale path: fp32, or bf16 (denoiser under bf16 autocast, text encoders bf16)"


def _warn_prompt_words(tokenizer, prompts: list[str]) -> None:
    """One warning each for words the model does not know (read as UNK) and prompts it truncates."""
    unknown: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        for word in tokenizer.unknown_words(prompt):
            unknown.setdefault(word, i)
    if unknown:
        words = ", ".join(repr(w) for w in list(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        warn(
            f"{len(unknown)} word(s) unknown to the model are read as an unknown token: {words} "
            f"(first in prompt {min(unknown.values()) + 1})"
        )
    long = [i for i, p in enumerate(prompts) if len(tokenizer.split(p)) + 1 > tokenizer.max_length]
    if long:
        warn(
            f"{len(long)} prompt(s) exceed the model's {tokenizer.max_length} tokens and are truncated "
            f"(first: prompt {long[0] + 1}, {prompts[long[0]]!r})"
        )


def _load(checkpoint: Path, device: str = "auto"):
    from tdmr1.devices import resolve_device
    from tdmr1.models.embedded import EmbeddedT2I

    return EmbeddedT2I.load(checkpoint, device=resolve_device(device)).eval()  # a path or a shipped name


def sample_command(
    checkpoint: Path | None = typer.Option(None, help="model folder (config.json + model.safetensors)"),
    prompts: Path | None = typer.Option(None, help="GenEval metadata jsonl, or plain text with one prompt a line"),
    prompt: list[str] = typer.Option([], "--prompt", help="a prompt (repeatable; with or instead of --prompts)"),
    out: Path = typer.Option(..., help="output folder (GenEval layout)"),
    steps: int | None = typer.Option(None, min=1, help="sampling steps (default: the checkpoint's)"),
    cfg: float | None = typer.Option(None, help="CFG scale (default: the checkpoint's)"),
    sampler: str | None = typer.Option(None, help="euler | dpm (default: the checkpoint's)"),
    shift: float | None = typer.Option(None, help="schedule time shift (default: the checkpoint's)"),
    seed: int = typer.Option(0, min=0, help="base seed; image j of prompt i uses seed + i*M + j"),
    images_per_prompt: int = typer.Option(4, min=1, help="images per prompt (M)"),
    batch_size: int = typer.Option(64, min=1, help="images per forward pass"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    grid: Path | None = typer.Option(None, help="also write a PNG grid of the first image of each prompt (<= 64)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the images of an earlier run in --out"),
    backbone: str | None = typer.Option(None, help=BACKBONE_HELP),
    model_dir: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    lora: Path | None = typer.Option(None, help=LORA_HELP),
    init_lora: Path | None = typer.Option(None, help=INIT_LORA_HELP),
    resolution: int | None = typer.Option(None, min=8, help=RESOLUTION_HELP),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
) -> None:
    """Sample images for prompts into GenEval's folder layout (embedded --checkpoint, or a scale --model)."""
    from tdmr1.cli import scale_cmd
    from tdmr1.errors import ConfigError
    from tdmr1.pipelines.generate import sample_to_folder

    scale = scale_cmd.is_scale(backbone, model_dir, lora, init_lora)
    if scale:
        embedded_only = {"--steps": steps, "--cfg": cfg, "--sampler": sampler, "--shift": shift}
        scale_cmd.check_scale_options(checkpoint, backbone, model_dir, embedded_only)
    elif checkpoint is None:
        raise ConfigError("sample needs --checkpoint DIR (embedded) or --model DIR (a diffusers pipeline folder)")
    metadata = scale_cmd.prompt_metadata(prompts, prompt)
    if metadata is None:
        raise ConfigError("sample needs prompts: --prompts FILE and/or --prompt TEXT")
    if grid is not None:
        check_writable_file(grid, "--grid file")
    prepare_results_dir(out, overwrite)  # before any work: a used folder is refused (or cleared)
    if scale:
        scale_cmd.scale_sample(
            model_dir,
            backbone,
            scale_cmd.adapter_path(lora, init_lora),
            metadata,
            out,
            resolution=resolution,
            precision=precision,
            seed=seed,
            images_per_prompt=images_per_prompt,
            batch_size=batch_size,
            device=device,
            grid=grid,
        )
        return
    if resolution is not None or precision != "fp32":
        raise ConfigError("--resolution and --precision are scale-path options (with --model)")
    model = _load(checkpoint, device)
    sampling = _sampling(model.meta, steps, cfg, sampler, shift)
    _warn_prompt_words(model.tokenizer, [md["prompt"] for md in metadata])
    seconds, images = sample_to_folder(model, metadata, out, sampling, images_per_prompt, seed, batch_size)
    if grid is not None:
        from tdmr1.utils.grid import save_grid

        first = images[::images_per_prompt][:64]
        save_grid(first, grid, labels=[md["prompt"] for md in metadata[: len(first)]])
        console.print(f"grid -> {grid}")
    n = len(metadata) * images_per_prompt
    console.print(
        f"{n} images ({sampling.nfe} NFE, {sampling.sampler}, cfg {sampling.cfg}) in {seconds:.1f} s -> {out}"
    )


def eval_command(
    world: str = typer.Option("shapes", help="embedded world whose benchmark to run"),
    checkpoint: Path | None = typer.Option(None, help="model folder"),
    steps: int | None = typer.Option(None, help="sampling steps (default: the checkpoint's)"),
    cfg: float | None = typer.Option(None, help="CFG scale (default: the checkpoint's)"),
    sampler: str | None = typer.Option(None, help="euler | dpm (default: the checkpoint's)"),
    shift: float | None = typer.Option(None, help="schedule time shift (default: the checkpoint's)"),
    images_per_prompt: int = typer.Option(4, min=1, help="images per benchmark prompt"),
    limit_prompts: int | None = typer.Option(None, min=1, help="evaluate a deterministic slice of N prompts per tag"),
    seed: int = typer.Option(0, min=0, help="base seed of the fixed per-image seeds"),
    out: Path = typer.Option(Path("eval_out"), help="folder for images and results.json"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results JSON here"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier evaluation in --out"),
    backbone: str | None = typer.Option(None, help=BACKBONE_HELP),
    model_dir: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    lora: Path | None = typer.Option(None, help=LORA_HELP),
    init_lora: Path | None = typer.Option(None, help=INIT_LORA_HELP),
    prompts: Path | None = typer.Option(None, help="scale path: prompt file (default: the world's benchmark)"),
    prompt: list[str] = typer.Option([], "--prompt", help="scale path: a prompt (repeatable)"),
    reward: str | None = typer.Option(
        None, help="scale path: reward spec (name, module:attr, file.py:attr, http://host:port; default: the world's)"
    ),
    resolution: int | None = typer.Option(None, min=8, help=RESOLUTION_HELP),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
    batch_size: int = typer.Option(8, min=1, help="scale path: images per forward pass"),
) -> None:
    """Sample the benchmark suite (or prompts), score it, print the per-tag table and write JSON."""

    from tdmr1.cli import scale_cmd
    from tdmr1.errors import ConfigError
    from tdmr1.eval.evaluate import evaluate

    scale = scale_cmd.is_scale(backbone, model_dir, lora, init_lora)
    if scale:
        embedded_only = {"--steps": steps, "--cfg": cfg, "--sampler": sampler, "--shift": shift}
        scale_cmd.check_scale_options(checkpoint, backbone, model_dir, embedded_only)
    elif checkpoint is None:
        raise ConfigError("eval needs --checkpoint DIR (embedded) or --model DIR (a diffusers pipeline folder)")
    elif prompts is not None or prompt or reward is not None or resolution is not None or precision != "fp32":
        raise ConfigError(
            "--prompts, --prompt, --reward, --resolution and --precision are scale-path options (with --model)"
        )
    if json_out is not None:
        check_writable_file(json_out, "--json file")
    prepare_results_dir(out, overwrite)  # before any work: a used folder is refused (or cleared)
    if scale:
        result = scale_cmd.scale_eval(
            model_dir,
            backbone,
            scale_cmd.adapter_path(lora, init_lora),
            scale_cmd.prompt_metadata(prompts, prompt),
            world,
            reward,
            out,
            limit_prompts=limit_prompts,
            resolution=resolution,
            precision=precision,
            seed=seed,
            images_per_prompt=images_per_prompt,
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
        )
        title = (
            f"{result['backbone']}: {model_dir} + {result['lora']} @ {result['nfe']} NFE "
            f"({result['sampler']}, reward {result['reward']}, {result['sampling_seconds']} s)"
        )
        _report(result, title, json_out)
        return
    model = _load(checkpoint, device)
    sampling = _sampling(model.meta, steps, cfg, sampler, shift)
    result = evaluate(model, world, sampling, out, images_per_prompt, limit_prompts, seed)
    title = (
        f"{world}: {checkpoint} @ {sampling.nfe} NFE ({sampling.sampler}, "
        f"cfg {sampling.cfg}, {result['sampling_seconds']} s)"
    )
    _report(result, title, json_out)


def _report(result: dict, title: str, json_out: Path | None) -> None:
    """An evaluation's summary table, and its JSON when asked."""
    import json

    from tdmr1.eval.scoring import print_summary

    print_summary(result, title=title)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2))
