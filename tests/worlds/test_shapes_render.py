"""Renderer and scene sampler: pixel-exact shapes, exact colours, sizes, margin and gap rules."""

from __future__ import annotations

import numpy as np
import pytest

from tdmr1.errors import ConfigError, DataError
from tdmr1.worlds.shapes import CLASSES, COLORS, Obj, placement_ok, render_scene, sample_scene, shape_mask
from tdmr1.worlds.shapes.palette import CANVAS, GAP, MARGIN, SIZES
from tdmr1.worlds.shapes.render import cross_thickness


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("size", SIZES)
def test_mask_fills_its_box_exactly(cls: str, size: int) -> None:
    m = shape_mask(cls, size)
    assert m.shape == (size, size)
    # every edge row and column is touched, so the bounding box is exactly s x s
    assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()
    # all four shapes are left-right symmetric except crosses with odd slack (s - t odd)
    if cls != "cross" or (size - cross_thickness(size)) % 2 == 0:
        assert np.array_equal(m, m[:, ::-1])


def test_shape_definitions_pinned() -> None:
    assert [cross_thickness(s) for s in SIZES] == [3, 3, 3, 4, 4]  # banker's rounding of s / 3
    assert {s: int(shape_mask("square", s).sum()) for s in SIZES} == {s: s * s for s in SIZES}
    assert [int(shape_mask("circle", s).sum()) for s in SIZES] == [52, 69, 80, 97, 112]
    # triangle: row i covers |2j + 1 - s| <= i + 1, base = full bottom row, 1 or 2 apex pixels
    for s in SIZES:
        widths = shape_mask("triangle", s).sum(axis=1)
        assert widths[0] == (1 if s % 2 else 2) and widths[-1] == s
        assert np.all(np.diff(widths) >= 0)
    cross8 = shape_mask("cross", 8).astype(int)
    assert cross8[:, 2:5].all() and cross8[2:5].all() and cross8.sum() == 2 * 8 * 3 - 9
    assert not cross8[:, [0, 1, 5, 6, 7]][[0, 1, 5, 6, 7]].any()
    circle8 = ["..####..", ".######.", "########", "########", "########", "########", ".######.", "..####.."]
    assert ["".join("#" if v else "." for v in row) for row in shape_mask("circle", 8)] == circle8


def test_render_exact_colours_and_pixels() -> None:
    objs = [
        Obj(cls, color, 1 + 15 * (k % 2), 1 + 15 * (k // 2), 8 + k)
        for k, (cls, color) in enumerate(zip(CLASSES, list(COLORS)[:4], strict=True))
    ]
    img = render_scene(objs)
    assert img.dtype == np.uint8 and img.shape == (CANVAS, CANVAS, 3)
    expected = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    for o in objs:
        box = expected[o.y : o.y + o.size, o.x : o.x + o.size]
        box[shape_mask(o.cls, o.size)] = COLORS[o.color]
    assert np.array_equal(img, expected)
    colours = {tuple(int(v) for v in c) for c in img.reshape(-1, 3)}
    assert colours <= set(COLORS.values()) | {(0, 0, 0)}  # no anti-aliasing


def test_render_rejects_bad_objects() -> None:
    with pytest.raises(DataError, match="unknown shape class"):
        render_scene([Obj("star", "red", 1, 1, 8)])
    with pytest.raises(DataError, match="unknown colour"):
        render_scene([Obj("circle", "black", 1, 1, 8)])
    with pytest.raises(DataError, match="does not fit"):
        render_scene([Obj("circle", "red", 28, 1, 8)])


def test_random_scenes_follow_placement_rules() -> None:
    rng = np.random.default_rng(0)
    counts, sizes = np.zeros(5, int), set()
    for _ in range(2000):
        scene = sample_scene(rng)
        counts[len(scene)] += 1
        sizes |= {o.size for o in scene}
        assert placement_ok(scene)
        for a in scene:
            x0, y0, x1, y1 = a.bbox
            assert x0 >= MARGIN and y0 >= MARGIN and x1 <= CANVAS - MARGIN and y1 <= CANVAS - MARGIN
        for i, a in enumerate(scene):
            for b in scene[:i]:
                gap_x = max(b.x - (a.x + a.size), a.x - (b.x + b.size))
                gap_y = max(b.y - (a.y + a.size), a.y - (b.y + b.size))
                assert max(gap_x, gap_y) >= GAP
        img = render_scene(scene)
        assert not img[0].any() and not img[-1].any() and not img[:, 0].any() and not img[:, -1].any()
    assert counts[0] == 0 and np.all(np.abs(counts[1:] / 2000 - 0.25) < 0.04)  # 1-4 objects, uniform
    assert sizes == set(SIZES)


def test_placement_ok_detects_violations() -> None:
    assert placement_ok([Obj("square", "red", 1, 1, 10), Obj("square", "red", 13, 1, 10)])  # 2 px gap
    assert not placement_ok([Obj("square", "red", 1, 1, 10), Obj("square", "red", 12, 1, 10)])  # 1 px
    assert not placement_ok([Obj("square", "red", 0, 1, 10)])  # margin


def test_sample_scene_errors_and_fixed_fields() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ConfigError, match="n_objects"):
        sample_scene(rng, 5)
    with pytest.raises(ConfigError, match="unknown value"):
        sample_scene(rng, 1, classes=["star"])
    scene = sample_scene(rng, 4, classes=["cross"] * 4, colors=["red", "blue", "red", "blue"], sizes=[12] * 4)
    assert [o.cls for o in scene] == ["cross"] * 4 and [o.size for o in scene] == [12] * 4
