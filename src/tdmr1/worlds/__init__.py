"""Registry of embedded worlds (``shapes``, ``glyphs``, ``glyphs-hard``, ``glyphs-compact``):
``get_world(name)`` returns a ``World`` (loaded lazily)."""

from __future__ import annotations

from collections.abc import Callable

from tdmr1.errors import ConfigError
from tdmr1.worlds.base import Metric, World

_FACTORIES: dict[str, Callable[[], World]] = {}
_CACHE: dict[str, World] = {}


def register_world(name: str, factory: Callable[[], World]) -> None:
    """Register a world factory under ``name`` (called lazily, once, by ``get_world``)."""
    _FACTORIES[name] = factory
    _CACHE.pop(name, None)


def known_worlds() -> list[str]:
    """Registered world names, sorted."""
    return sorted(_FACTORIES)


def get_world(name: str) -> World:
    """The world called ``name``; ConfigError listing the known names when there is none."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown world {name!r} (known: {', '.join(known_worlds())})")
    if name not in _CACHE:
        _CACHE[name] = _FACTORIES[name]()
    return _CACHE[name]


def _shapes() -> World:
    from tdmr1.worlds.shapes.world import make_world

    return make_world()


def _glyphs() -> World:
    from tdmr1.worlds.glyphs.world import make_world

    return make_world()


register_world("shapes", _shapes)


def _glyphs_hard() -> World:
    from tdmr1.worlds.glyphs.world import make_world

    return make_world("hard")


def _glyphs_compact() -> World:
    from tdmr1.worlds.glyphs.world import make_world

    return make_world("compact")


register_world("glyphs", _glyphs)
register_world("glyphs-hard", _glyphs_hard)
register_world("glyphs-compact", _glyphs_compact)

__all__ = ["Metric", "World", "get_world", "known_worlds", "register_world"]
