"""Checker: exact detection on clean renders and GenEval's scoring rules on hand-made scenes."""

from __future__ import annotations

import numpy as np
import pytest

from tdmr1.errors import DataError
from tdmr1.reward_protocol import Reward
from tdmr1.worlds.shapes import (
    CLASSES,
    COLORS,
    Obj,
    ShapesChecker,
    check_image,
    detect,
    detect_batch,
    parse_prompt,
    relative_position,
    render_scene,
    render_scenes,
    sample_scene,
    shape_mask,
)
from tdmr1.worlds.shapes.palette import SIZES
from tdmr1.worlds.shapes.prompts import all_prompts


def _key(o) -> tuple:
    return (o.cls, o.color, tuple(o.bbox))


def test_clean_random_scenes_recovered_exactly() -> None:
    rng = np.random.default_rng(123)
    scenes = [sample_scene(rng) for _ in range(3000)]
    found = detect_batch(render_scenes(scenes))
    n_obj = 0
    for scene, dets in zip(scenes, found, strict=True):
        assert sorted(_key(o) for o in scene) == sorted(_key(d) for d in dets)
        areas = {tuple(d.bbox): d.area for d in dets}
        for o in scene:
            assert areas[o.bbox] == shape_mask(o.cls, o.size).sum()
        n_obj += len(scene)
    assert n_obj > 6000


@pytest.mark.parametrize("cls", CLASSES)
def test_every_class_size_colour(cls: str) -> None:
    objs = [Obj(cls, color, 5, 9, size) for size in SIZES for color in COLORS]
    dets = detect_batch(render_scenes([[o] for o in objs]))
    assert [(d[0].cls, d[0].color, d[0].bbox) for d in dets] == [(o.cls, o.color, o.bbox) for o in objs]


def test_touching_same_colour_is_one_object() -> None:
    img = render_scene([Obj("square", "red", 2, 2, 10), Obj("square", "red", 12, 2, 10)])
    dets = detect(img)
    assert len(dets) == 1 and dets[0].bbox == (2, 2, 22, 12)
    assert not check_image(img, parse_prompt("a photo of two squares")).correct
    # diagonal contact also joins (8-connectivity)
    assert len(detect(render_scene([Obj("square", "red", 2, 2, 8), Obj("square", "red", 10, 10, 8)]))) == 1
    # different colours stay separate
    dets = detect(render_scene([Obj("square", "red", 2, 2, 10), Obj("square", "blue", 12, 2, 10)]))
    assert sorted(d.color for d in dets) == ["blue", "red"] and {d.cls for d in dets} == {"square"}


def test_foreground_threshold_nearest_colour_and_noise() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[2:6, 2:5] = (61, 10, 10)  # 12 px, max channel 61 > 60: kept, nearest colour red
    img[10:14, 10:13] = (60, 60, 60)  # max channel 60: background
    img[20:23, 20:24] = (230, 50, 45)  # 12 px near red
    img[20:23, 2:5] = (240, 230, 40)  # 9 px: noise, dropped
    img[28, 2:13] = (40, 90, 230)  # 11 px line: noise, dropped
    dets = detect(img)
    assert sorted((d.color, d.area) for d in dets) == [("red", 12), ("red", 12)]


def test_blurred_shapes_keep_their_class() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    scenes = [sample_scene(rng, 1) for _ in range(300)]
    imgs = ndimage.gaussian_filter(render_scenes(scenes).astype(float), (0, 0.4, 0.4, 0))
    dets = detect_batch(np.clip(imgs, 0, 255).astype(np.uint8))
    hits = sum(bool(d) and d[0].cls == s[0].cls for s, d in zip(scenes, dets, strict=True))
    assert hits / len(scenes) > 0.97


def _img(*objs: Obj) -> np.ndarray:
    return render_scene(objs)


def test_counting_exact() -> None:
    md = parse_prompt("a photo of two circles")
    assert md["exclude"] == [{"class": "circle", "count": 3}]
    two = [Obj("circle", "red", 1, 1, 10), Obj("circle", "blue", 15, 1, 10)]
    third = Obj("circle", "green", 1, 15, 10)
    fourth = Obj("circle", "green", 15, 15, 10)
    r = check_image(_img(*two), md)
    assert r.correct and r.score == 1.0 and r.reason == "ok"
    r = check_image(_img(*two, third), md)
    assert not r.correct and r.reason == "expected circle<3, found 3" and r.score == 0.5
    r = check_image(_img(two[0]), md)
    assert not r.correct and r.reason == "expected circle>=2, found 1" and r.score == 0.5
    assert check_image(_img(*two, third, fourth), md).score == 0.0
    # other classes are allowed
    assert check_image(_img(*two, Obj("square", "red", 1, 15, 10)), md).correct


def test_single_object_allows_extras_and_duplicates() -> None:
    md = parse_prompt("a photo of a circle")
    scene = [Obj("circle", "red", 1, 1, 10), Obj("square", "red", 15, 1, 10), Obj("cross", "blue", 1, 15, 10)]
    assert check_image(_img(*scene), md).correct
    assert check_image(_img(scene[0], Obj("circle", "blue", 15, 15, 9)), md).correct  # include means >=
    r = check_image(_img(*scene[1:]), md)
    assert not r.correct and r.score == 0.0 and r.reason == "expected circle>=1, found 0"


def test_colour_judged_on_largest_object() -> None:
    md = parse_prompt("a photo of a red circle")
    big_blue, small_red = Obj("circle", "blue", 1, 1, 12), Obj("circle", "red", 18, 18, 8)
    r = check_image(_img(big_blue, small_red), md)
    assert not r.correct and r.score == 0.5 and r.reason.startswith("expected red circle>=1, found 0 red")
    big_red, small_blue = Obj("circle", "red", 1, 1, 12), Obj("circle", "blue", 18, 18, 8)
    assert check_image(_img(big_red, small_blue), md).correct


def test_color_attr_swapped_colours() -> None:
    md = parse_prompt("a photo of a red circle and a blue square")
    ok = [Obj("circle", "red", 1, 1, 10), Obj("square", "blue", 15, 15, 10)]
    swapped = [Obj("circle", "blue", 1, 1, 10), Obj("square", "red", 15, 15, 10)]
    assert check_image(_img(*ok), md).correct
    r = check_image(_img(*swapped), md)
    assert not r.correct and r.score == 0.5  # count terms 1, 1; colour terms 0, 0


def test_position_threshold_shrink() -> None:
    md = parse_prompt("a photo of a circle right of a square")
    square = Obj("square", "red", 1, 1, 10)  # centre (6, 6)
    inside = Obj("circle", "blue", 13, 16, 10)  # offset (12, 15): shrunk dx 10 / 19.2 = 0.52 > 0.5
    outside = Obj("circle", "blue", 13, 17, 10)  # offset (12, 16): shrunk dx 10 / 20 = 0.5, not > 0.5
    assert relative_position(inside.bbox, square.bbox) == {"right of", "below"}
    assert relative_position(outside.bbox, square.bbox) == {"below"}
    assert 12 / 20 > 0.5  # without GenEval's 0.1 x (size sum) shrink the second case would pass
    assert check_image(_img(square, inside), md).correct
    r = check_image(_img(square, outside), md)
    assert not r.correct and r.score == 2 / 3 and r.reason == "expected circle right of target, found below target"


def test_above_means_smaller_y() -> None:
    top, bottom = Obj("circle", "red", 10, 1, 10), Obj("square", "blue", 10, 19, 10)
    img = _img(top, bottom)
    assert check_image(img, parse_prompt("a photo of a circle above a square")).correct
    assert check_image(img, parse_prompt("a photo of a square below a circle")).correct
    assert not check_image(img, parse_prompt("a photo of a circle below a square")).correct


def test_position_without_target() -> None:
    r = check_image(_img(Obj("circle", "red", 1, 1, 10)), parse_prompt("a photo of a circle left of a square"))
    assert not r.correct and r.reason == "expected square>=1, found 0; no target for circle to be left of"


def _geneval_relative_position(box_a, box_b) -> set[str]:
    """GenEval's numpy implementation, for cross-checking the plain-float port."""
    boxes = np.array([box_a, box_b], dtype=float).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - 0.1 * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = {"left of"} if dx < -0.5 else {"right of"} if dx > 0.5 else set()
    return rel | ({"above"} if dy < -0.5 else {"below"} if dy > 0.5 else set())


def test_relative_position_matches_geneval() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3000):
        a, b = sample_scene(rng, 2)
        assert relative_position(a.bbox, b.bbox) == _geneval_relative_position(a.bbox, b.bbox)
    assert relative_position((0, 0, 10, 10), (0, 0, 10, 10)) == set()


def test_score_is_one_exactly_when_correct() -> None:
    rng = np.random.default_rng(7)
    prompts = [md for tag in ("two_object", "counting", "colors", "position", "color_attr") for md in all_prompts(tag)]
    seen = {True: 0, False: 0}
    for _ in range(3000):
        md = prompts[rng.integers(len(prompts))]
        r = check_image(render_scene(sample_scene(rng)), md)
        assert 0.0 <= r.score <= 1.0 and (r.score == 1.0) == r.correct
        seen[r.correct] += 1
    assert seen[True] > 20 and seen[False] > 1000


def test_reward_protocol_and_input_errors() -> None:
    checker = ShapesChecker()
    assert isinstance(checker, Reward) and checker.name == "shapes"
    mds = [parse_prompt("a photo of a circle"), {"prompt": "a photo of a square"}]
    imgs = np.stack([_img(Obj("circle", "red", 1, 1, 10))] * 2)
    out = checker(imgs, [m["prompt"] for m in mds], mds)
    assert out.scores.dtype == np.float32 and out.scores.tolist() == [1.0, 0.0]
    assert out.info["correct"] == [True, False] and out.info["reason"][1] == "expected square>=1, found 0"
    with pytest.raises(DataError, match="32x32"):
        checker(np.zeros((1, 64, 64, 3), np.uint8), ["x"], mds[:1])
    with pytest.raises(DataError, match="uint8"):
        checker(imgs.astype(np.float32), ["x", "y"], mds)
    with pytest.raises(DataError, match="RGB"):
        checker(imgs[..., 0], ["x", "y"], mds)
    with pytest.raises(DataError, match="item 1: unknown tag 'bogus'"):
        checker(imgs, ["x", "y"], [mds[0], {**mds[0], "tag": "bogus"}])
    with pytest.raises(DataError, match="item 0: include\\[0\\] needs an integer 'count'"):
        checker(imgs[:1], ["x"], [{"tag": "colors", "include": [{"class": "circle", "count": 0}], "prompt": "x"}])
    with pytest.raises(DataError, match="unknown class 'dog'"):
        checker(imgs[:1], ["x"], [{"tag": "single_object", "include": [{"class": "dog", "count": 1}]}])
    with pytest.raises(DataError, match="not a ShapesEval template"):
        checker(imgs[:1], ["x"], [{"prompt": "a photo of a dog"}])
    with pytest.raises(DataError, match="2 images but 1 prompts"):
        checker(imgs, ["x"], mds)
