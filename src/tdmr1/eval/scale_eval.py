"""`tdmr1 eval --model DIR` on a scale-path backbone: sample prompts with the few-step generator, score the
images with any reward spec (default: the world's own) through ``score_folder``, write the embedded ``eval``'s
JSON keys where they apply (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tdmr1.eval.scoring import score_folder
from tdmr1.pipelines.scale_sampling import ScaleGenerator, sample_scale_to_folder, sampling_info
from tdmr1.reward_protocol import Reward
from tdmr1.utils.io import atomic_write_text
from tdmr1.utils.outputs import prepare_results_dir
from tdmr1.worlds import get_world


class RewardJudge:
    """The part of a World that :func:`score_folder` uses, around any reward."""

    tags: tuple[str, ...] = ()
    metrics: tuple = ()
    spec = None
    quality = None

    def __init__(self, reward: Reward, image_size: tuple[int, int]):
        self.reward, self.image_size = reward, tuple(image_size)

    def resolve_metadata(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return dict(metadata)

    def make_reward(self) -> Reward:
        return self.reward


def evaluate_scale(
    gen: ScaleGenerator,
    metadata: list[dict[str, Any]],
    out_dir: str | Path,
    world_name: str,
    reward_spec: str | None = None,
    images_per_prompt: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample ``metadata`` into ``out_dir/images``, score, write and return ``out_dir/results.json``."""
    from tdmr1.rewards.registry import make_reward

    side = gen.model.resolution
    world = get_world(world_name)
    if reward_spec is None:
        world.check_image_size((side, side), f"the backbone ({side}x{side} images)")
        judge: Any = world
        reward_name = getattr(world.make_reward(), "name", world_name)
    else:
        reward = make_reward(reward_spec, world, run_dir=Path(out_dir))
        judge = RewardJudge(reward, (side, side))
        reward_name = getattr(reward, "name", reward_spec)
    prepare_results_dir(out_dir, overwrite)
    images_dir = Path(out_dir) / "images"
    seconds, _ = sample_scale_to_folder(gen, metadata, images_dir, images_per_prompt, seed, batch_size, quiet=quiet)
    report = score_folder(judge, images_dir)
    info = sampling_info(gen)
    result = {
        **({"world": world_name} if reward_spec is None else {}),
        "reward": reward_spec or world_name,
        "reward_name": reward_name,
        **report.summary(),
        "nfe": info["nfe"],
        "steps": info["steps"],
        "cfg": 1.0,
        "sampler": info["solver"],
        "images": len(metadata) * images_per_prompt,
        "sampling_seconds": round(seconds, 2),
        "device": _device_name(gen.sigmas.device),
        **{k: info[k] for k in ("backbone", "model", "lora", "sigmas", "resolution", "mixed_precision")},
    }
    atomic_write_text(Path(out_dir) / "results.json", json.dumps(result, indent=2))
    return result


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
