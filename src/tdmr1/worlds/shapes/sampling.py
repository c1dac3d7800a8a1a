"""Scene samplers: random scenes under the placement rules (boxes 1 px inside the canvas, 2 px apart, each object
uniform among the positions still valid, redrawn when none is) and scenes that satisfy a prompt (the oracle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tdmr1.errors import ConfigError, DataError
from tdmr1.worlds.shapes.palette import (
    CANVAS,
    CLASSES,
    COLOR_NAMES,
    GAP,
    MARGIN,
    MAX_OBJECTS,
    MIN_OBJECTS,
    SIZE_MAX,
    SIZE_MIN,
)
from tdmr1.worlds.shapes.render import Obj, render_scene

_SCENE_RESTARTS = 200


def _valid_positions(size: int, placed: Sequence[Obj]) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of every valid top-left corner for a new object of ``size`` given ``placed`` ones."""
    coords = np.arange(MARGIN, CANVAS - MARGIN - size + 1)
    ok = np.ones((coords.size, coords.size), dtype=bool)  # [y, x]
    for o in placed:
        sep_x = (coords + size + GAP <= o.x) | (o.x + o.size + GAP <= coords)
        sep_y = (coords + size + GAP <= o.y) | (o.y + o.size + GAP <= coords)
        ok &= sep_y[:, None] | sep_x[None, :]
    ys, xs = np.nonzero(ok)
    return coords[ys], coords[xs]


def placement_ok(objs: Sequence[Obj]) -> bool:
    """Whether a scene follows the placement rules (margin, gap, sizes)."""
    for k, a in enumerate(objs):
        if not SIZE_MIN <= a.size <= SIZE_MAX:
            return False
        if a.x < MARGIN or a.y < MARGIN or a.x + a.size > CANVAS - MARGIN or a.y + a.size > CANVAS - MARGIN:
            return False
        for b in objs[:k]:
            sep_x = a.x + a.size + GAP <= b.x or b.x + b.size + GAP <= a.x
            sep_y = a.y + a.size + GAP <= b.y or b.y + b.size + GAP <= a.y
            if not (sep_x or sep_y):
                return False
    return True


def _pick(rng: np.random.Generator, values: Sequence[str] | None, n: int, pool: Sequence[str], what: str) -> list[str]:
    if values is None:
        return [pool[i] for i in rng.integers(len(pool), size=n)]
    values = list(values)
    if len(values) != n:
        raise ConfigError(f"{what}: expected {n} entries (one per object), got {len(values)}")
    for v in values:
        if v not in pool:
            raise ConfigError(f"{what}: unknown value {v!r} (known: {', '.join(pool)})")
    return values


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    classes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
) -> list[Obj]:
    """A random scene of ``n_objects`` (uniform in 1..4 when None) obeying the placement rules.

    ``classes``, ``colors`` and ``sizes`` fix the per-object values (one entry per object); unset
    ones are uniform at random. Raises ConfigError when the request cannot be placed.
    """
    if n_objects is None:
        n_objects = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    if not MIN_OBJECTS <= n_objects <= MAX_OBJECTS:
        raise ConfigError(f"n_objects must be in [{MIN_OBJECTS}, {MAX_OBJECTS}], got {n_objects}")
    cls_list = _pick(rng, classes, n_objects, CLASSES, "classes")
    col_list = _pick(rng, colors, n_objects, COLOR_NAMES, "colors")
    if sizes is not None:
        if len(sizes) != n_objects or any(not SIZE_MIN <= int(s) <= SIZE_MAX for s in sizes):
            raise ConfigError(f"sizes must be {n_objects} ints in [{SIZE_MIN}, {SIZE_MAX}], got {list(sizes)}")
    for _ in range(_SCENE_RESTARTS):
        size_list = (
            [int(s) for s in sizes] if sizes is not None else rng.integers(SIZE_MIN, SIZE_MAX + 1, n_objects).tolist()
        )
        placed: list[Obj] = []
        for cls, color, size in zip(cls_list, col_list, size_list, strict=True):
            ys, xs = _valid_positions(size, placed)
            if ys.size == 0:
                break
            k = int(rng.integers(ys.size))
            placed.append(Obj(cls, color, int(xs[k]), int(ys[k]), size))
        if len(placed) == n_objects:
            return placed
    raise ConfigError(f"could not place {n_objects} objects of sizes {size_list} after {_SCENE_RESTARTS} tries")


def _objects_needed(md: Mapping[str, Any]) -> tuple[list[tuple[str, str | None]], set[str]]:
    """(class, colour or None) per required object, and the classes the prompt mentions."""
    needed: list[tuple[str, str | None]] = []
    per_class: dict[str, int] = {}
    for req in md["include"]:
        per_class[req["class"]] = per_class.get(req["class"], 0) + int(req["count"])
        needed.extend([(req["class"], req.get("color"))] * int(req["count"]))
    mentioned = {r["class"] for r in md["include"]} | {r["class"] for r in md.get("exclude", [])}
    return needed, mentioned


def sample_scene_for(
    metadata: Mapping[str, Any],
    rng: np.random.Generator,
    max_distractors: int = 0,
    max_tries: int = 1000,
) -> list[Obj]:
    """A scene that the checker judges ``correct`` for ``metadata`` (the oracle renderer).

    Draws the required objects (colours as requested, else uniform), optionally 0..``max_distractors``
    extra objects of classes the prompt does not mention (never more than 4 objects in all), places
    them uniformly and keeps the first scene whose *rendered image* passes the checker (rejection:
    positions for ``position`` prompts, area order for colours). DataError when the metadata cannot be
    satisfied within the rules (e.g. more than 4 objects) or no scene is found in ``max_tries``.
    """
    from tdmr1.worlds.shapes.checker import check_image
    from tdmr1.worlds.shapes.prompts import resolve_metadata

    md = resolve_metadata(metadata)
    needed, mentioned = _objects_needed(md)
    if len(needed) > MAX_OBJECTS:
        raise DataError(
            f"prompt {md.get('prompt', md)!r} needs {len(needed)} objects; scenes hold at most {MAX_OBJECTS}"
        )
    free_classes = [c for c in CLASSES if c not in mentioned]
    for _ in range(max_tries):
        n_extra = 0
        if free_classes and max_distractors > 0:
            n_extra = int(rng.integers(0, min(max_distractors, MAX_OBJECTS - len(needed)) + 1))
        classes = [c for c, _ in needed] + [free_classes[i] for i in rng.integers(len(free_classes), size=n_extra)]
        colors = [col if col is not None else COLOR_NAMES[rng.integers(len(COLOR_NAMES))] for _, col in needed]
        colors += [COLOR_NAMES[i] for i in rng.integers(len(COLOR_NAMES), size=n_extra)]
        order = rng.permutation(len(classes))  # placement order must not favour the first clause
        try:
            scene = sample_scene(
                rng, len(classes), classes=[classes[i] for i in order], colors=[colors[i] for i in order]
            )
        except ConfigError:
            continue
        if check_image(render_scene(scene), md).correct:
            return scene
    raise DataError(f"no scene satisfying {md.get('prompt', md)!r} found in {max_tries} tries")
