"""The scale-path halves of `tdmr1 sample` and `tdmr1 eval` (``--backbone sd3|zimage --model DIR``), and the
checks that keep embedded-only and scale-only options apart (each misuse is one line, exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from tdmr1.errors import ConfigError

console = Console()

DISTILL_SCALE_MESSAGE = (
    "distill runs on embedded teachers only: the scale path (sd3, zimage) starts from the authors' TDM LoRA, "
    "e.g. `tdmr1 train --backbone sd3 --model DIR --init-lora tdm_sd3-5_lora.ckpt`"
)


def is_scale(backbone: str | None, model: Path | None, lora: Path | None, init_lora: Path | None) -> bool:
    return any(v is not None for v in (backbone, model, lora, init_lora))


def check_scale_options(
    checkpoint: Path | None, backbone: str | None, model: Path | None, embedded_only: dict[str, Any]
) -> None:
    """One-line errors for a scale run without --model, with --checkpoint, or with embedded sampling options."""
    if backbone is not None and backbone not in ("sd3", "zimage"):
        raise ConfigError(f"--backbone must be sd3 or zimage, got {backbone!r}")
    if model is None:
        raise ConfigError("--backbone/--lora/--init-lora need --model DIR (a local diffusers pipeline folder)")
    if checkpoint is not None:
        raise ConfigError("give --checkpoint (embedded model) or --model (diffusers pipeline folder), not both")
    given = [name for name, value in embedded_only.items() if value is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: embedded sampling options; a scale backbone samples its few-step schedule "
            "(the adapter's, else the released weights')"
        )


def adapter_path(lora: Path | None, init_lora: Path | None) -> Path | None:
    if lora is not None and init_lora is not None:
        raise ConfigError("give --lora (a trained adapter) or --init-lora (the authors' TDM LoRA), not both")
    return lora if lora is not None else init_lora


def prompt_metadata(prompts: Path | None, prompt: list[str]) -> list[dict[str, Any]] | None:
    """Metadata from ``--prompts FILE`` and/or ``--prompt TEXT`` (None when neither is given)."""
    from tdmr1.geneval.layout import read_prompt_file

    metadata: list[dict[str, Any]] = []
    if prompts is not None:
        metadata += read_prompt_file(prompts, known_tags=None, require_include=False)  # sampling does not judge
    metadata += [{"prompt": p} for p in prompt]
    return metadata or None


def scale_sample(
    model: Path,
    backbone: str | None,
    adapter: Path | None,
    metadata: list[dict[str, Any]],
    out: Path,
    *,
    resolution: int | None,
    precision: str,
    seed: int,
    images_per_prompt: int,
    batch_size: int,
    device: str,
    grid: Path | None,
) -> None:
    from tdmr1.pipelines.scale_sampling import load_scale_generator, sample_scale_to_folder

    gen = load_scale_generator(model, backbone, adapter, resolution, precision, device)
    seconds, images = sample_scale_to_folder(gen, metadata, out, images_per_prompt, seed, batch_size)
    if grid is not None:
        from tdmr1.utils.grid import save_grid

        first = images[::images_per_prompt][:64]
        save_grid(first, grid, labels=[md["prompt"] for md in metadata[: len(first)]])
        console.print(f"grid -> {grid}")
    n = len(metadata) * images_per_prompt
    what = f"{gen.model.kind} + {adapter}" if adapter is not None else f"{gen.model.kind} (no adapter)"
    console.print(f"{n} images ({len(gen.sigmas) - 1} NFE, {gen.solver}, {what}) in {seconds:.1f} s -> {out}")


def scale_eval(
    model: Path,
    backbone: str | None,
    adapter: Path | None,
    metadata: list[dict[str, Any]] | None,
    world: str,
    reward: str | None,
    out: Path,
    *,
    limit_prompts: int | None,
    resolution: int | None,
    precision: str,
    seed: int,
    images_per_prompt: int,
    batch_size: int,
    device: str,
    overwrite: bool,
) -> dict[str, Any]:
    from tdmr1.eval.scale_eval import evaluate_scale
    from tdmr1.pipelines.scale_sampling import load_scale_generator
    from tdmr1.worlds import get_world

    if metadata is None:  # the world's benchmark suite
        w = get_world(world)
        metadata = w.benchmark_suite()
        if limit_prompts is not None:
            metadata = w.subsample_suite(metadata, limit_prompts)
    elif limit_prompts is not None:
        metadata = metadata[:limit_prompts]
    gen = load_scale_generator(model, backbone, adapter, resolution, precision, device)
    return evaluate_scale(gen, metadata, out, world, reward, images_per_prompt, seed, batch_size, overwrite=overwrite)
