"""Reward registry: names -> factories, so configs and the CLI can pick a reward by name."""

from __future__ import annotations

from collections.abc import Callable

from tdmr1.errors import ConfigError
from tdmr1.rewards.base import Reward
from tdmr1.worlds.base import World


def _shapes() -> Reward:
    from tdmr1.worlds.shapes.checker import ShapesChecker

    return ShapesChecker()


def _ocr() -> Reward:
    from tdmr1.worlds.glyphs.ocr import OcrReward

    return OcrReward()


REWARDS: dict[str, Callable[[], Reward]] = {"shapes": _shapes, "ocr": _ocr}


def make_reward(name: str | None, world: World) -> Reward:
    """The reward called ``name``, or the world's own reward when ``name`` is None."""
    if name is None:
        return world.make_reward()
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r} (known: {', '.join(sorted(REWARDS))})")
    return REWARDS[name]()
