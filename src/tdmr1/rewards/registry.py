"""Reward specs -> rewards, for configs and the CLI: a world's own, a registered name, ``http://host:port``,
``likes``, ``ocr-det``, ``geneval-det``, ``module:attr`` or a weighted mapping of them (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tdmr1.errors import ConfigError
from tdmr1.reward_protocol import Reward
from tdmr1.worlds import get_world, known_worlds
from tdmr1.worlds.base import World

#: reward names that are another world's reward
ALIASES: dict[str, str] = {"ocr": "glyphs"}
#: extra named rewards (``register_reward``)
REWARDS: dict[str, Callable[[], Reward]] = {}

_REMOTE_OPTIONS = {"reward", "timeout_s", "retries", "backoff_s", "batch_size", "cache", "token"}
_LIKES_OPTIONS = {"host", "port", "token", "replay", "db", "run", "open_browser"}
#: rewards on real images that take options: name -> (module, class, option names)
_REAL_IMAGE_REWARDS: dict[str, tuple[str, str, frozenset[str]]] = {
    "ocr-det": ("tdmr1.rewards.ocr_det", "OcrDetReward", frozenset({"threads", "use_cls", "limit_side"})),
    "geneval-det": (
        "tdmr1.rewards.geneval_det",
        "GenEvalDetReward",
        frozenset(
            {"detector", "threshold", "counting_threshold", "max_objects", "nms_threshold", "color"}
            | {"timeout_s", "retries", "backoff_s", "batch_size", "token"}
        ),
    ),
}


def register_reward(name: str, factory: Callable[[], Reward]) -> None:
    """Make ``factory()`` available as reward ``name`` (configs, ``tdmr1 serve-reward --reward``)."""
    REWARDS[name] = factory


def known_rewards() -> list[str]:
    return sorted({*known_worlds(), *ALIASES, *REWARDS, *_REAL_IMAGE_REWARDS, "likes"})


def _real_image_reward(name: str, options: Mapping[str, Any]) -> Reward:
    module, cls, known = _REAL_IMAGE_REWARDS[name]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"reward {name}: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if name == "geneval-det" and "detector" not in options:
        raise ConfigError(
            "reward geneval-det needs a detector: reward: {geneval-det: {detector: my_det.py:detect}} "
            "(module:attr, file.py:attr or http://host:port)"
        )
    return getattr(importlib.import_module(module), cls)(**options)


def named_reward(name: str) -> Reward:
    """A reward by name: a registered one, a world's own (``shapes``, ``glyphs``/``ocr``) or ``module:attr``."""
    if name in REWARDS:
        return REWARDS[name]()
    if name in _REAL_IMAGE_REWARDS:
        return _real_image_reward(name, {})
    world = ALIASES.get(name, name)
    if world in known_worlds():
        return get_world(world).make_reward()
    if ":" in name and not name.startswith(("http://", "https://")):
        return _import_reward(name)()
    raise ConfigError(f"unknown reward {name!r} (known: {', '.join(known_rewards())}, http://host:port, module:attr)")


def import_callable(spec: str, what: str = "reward") -> Callable[..., Any]:
    """The callable ``attr`` of ``module:attr`` or ``path/to/file.py:attr`` (``what`` names it in errors)."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError(f"{what} file not found: {path}")
            module_spec = importlib.util.spec_from_file_location(f"tdmr1_user_{what}_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise ConfigError(f"cannot import {what} {spec!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{what} {spec!r}: {target} has no callable {attr!r}")
    return factory


def _import_reward(spec: str) -> Callable[[], Reward]:
    return import_callable(spec, "reward")


def _single(key: str, options: Mapping[str, Any], run_dir: Path | None) -> Reward:
    if key.startswith(("http://", "https://")):
        unknown = sorted(set(options) - _REMOTE_OPTIONS)
        if unknown:
            raise ConfigError(
                f"reward {key}: unknown option {unknown[0]!r} (known: {', '.join(sorted(_REMOTE_OPTIONS))})"
            )
        from tdmr1.rewards.remote import RemoteReward

        cache_path = run_dir / "reward_cache.sqlite" if run_dir is not None else None
        return RemoteReward(key, cache_path=cache_path, **options)
    if key == "likes":
        unknown = sorted(set(options) - _LIKES_OPTIONS)
        if unknown:
            raise ConfigError(
                f"reward likes: unknown option {unknown[0]!r} (known: {', '.join(sorted(_LIKES_OPTIONS))})"
            )
        from tdmr1.rewards.likes import LikesReward

        return LikesReward(run_dir=run_dir, **options)
    if key in _REAL_IMAGE_REWARDS and key not in REWARDS:
        return _real_image_reward(key, options)
    if options:
        raise ConfigError(f"reward {key!r} takes no options (got {', '.join(sorted(options))})")
    return named_reward(key)


def make_reward(spec: str | Mapping[str, Any] | None, world: World, run_dir: str | Path | None = None) -> Reward:
    """The reward described by ``spec`` (see the module doc), or the world's own reward when ``spec`` is None.

    ``run_dir`` (the run folder) is where a remote reward caches scores and the likes reward keeps its
    SQLite labels; without it they use the user cache / the current folder.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    if spec is None:
        return world.make_reward()
    if isinstance(spec, str):
        return _single(spec, {}, run_dir)
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"reward: expected a name, a URL or a mapping of reward -> weight, got {spec!r}")
    parts: list[tuple[str, float, Reward]] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ConfigError(f"reward: keys must be reward names or URLs, got {key!r}")
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weight = options.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"reward {key!r}: weight must be a number, got {weight!r}")
        parts.append((key, float(weight), _single(key, options, run_dir)))
    if len(parts) == 1 and parts[0][1] == 1.0:
        return parts[0][2]
    from tdmr1.rewards.composite import CompositeReward

    try:
        return CompositeReward(parts)
    except ValueError as exc:
        raise ConfigError(f"reward: {exc}") from None
