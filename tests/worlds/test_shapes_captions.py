"""Caption model: spec probabilities, phrase format, relation truth, batch generation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tdmr1.errors import ConfigError
from tdmr1.worlds.shapes import (
    CaptionConfig,
    Obj,
    plan_caption,
    relative_position,
    sample_caption,
    sample_scene,
    sample_training_batch,
    sample_training_example,
)
from tdmr1.worlds.shapes.captions import CaptionPlan, GroupPlan

N = 6000


def _within(freq: float, p: float, n: int) -> bool:
    return abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9


def test_config_defaults_are_the_spec() -> None:
    cfg = CaptionConfig()
    assert (cfg.omit_class_p, cfg.exact_count_p, cfg.color_p, cfg.relation_p) == (0.1, 0.4, 0.5, 0.2)
    with pytest.raises(ConfigError, match="color_p"):
        CaptionConfig(color_p=1.5)
    with pytest.raises(ConfigError, match="omit_class_p"):
        CaptionConfig(omit_class_p=1.0)


def test_single_object_frequencies() -> None:
    rng = np.random.default_rng(0)
    pattern = re.compile(
        r"^(a|one) (?:(red|orange|yellow|green|blue|purple|pink|white) )?(circle|square|triangle|cross)$"
    )
    exact = colour = 0
    for _ in range(N):
        scene = sample_scene(rng, 1)
        m = pattern.match(sample_caption(scene, rng))
        assert m, scene  # never omitted (a caption names at least one class), no relation
        assert m.group(3) == scene[0].cls and m.group(2) in (None, scene[0].color)
        exact += m.group(1) == "one"
        colour += m.group(2) is not None
    assert _within(exact / N, 0.4, N) and _within(colour / N, 0.5, N)


def test_omission_and_relation_frequencies() -> None:
    rng = np.random.default_rng(1)
    one_omitted = eligible = stated = 0
    for _ in range(N):
        a, b = rng.choice(["circle", "square", "triangle", "cross"], 2, replace=False)
        scene = sample_scene(rng, 2, classes=[a, b])
        plan = plan_caption(scene, rng)
        assert len(plan.groups) >= 1
        one_omitted += len(plan.omitted) == 1
        if plan.relation_eligible:
            eligible += 1
            if plan.relation is not None:
                stated += 1
                ia, rel, ib = plan.relation
                oa = next(o for o in scene if o.cls == plan.groups[ia].cls)
                ob = next(o for o in scene if o.cls == plan.groups[ib].cls)
                assert rel in relative_position(oa.bbox, ob.bbox)  # GenEval's rule is the truth
                assert f" {rel} " in plan.text()
    # each of two classes omitted with p = 0.1, redrawn when both are: 2 * 0.09 / 0.99
    assert _within(one_omitted / N, 2 * 0.1 * 0.9 / 0.99, N)
    assert eligible > 3000 and _within(stated / eligible, 0.2, eligible)


def test_group_counts_and_mixed_colours() -> None:
    rng = np.random.default_rng(2)
    exact = several = 0
    for _ in range(3000):
        scene = sample_scene(rng, 3, classes=["cross"] * 3, colors=["red", "red", "blue"])
        caption = sample_caption(scene, rng)
        assert caption in ("three crosses", "some crosses")  # mixed colours are never named
        exact += caption == "three crosses"
        several += 1
    assert _within(exact / several, 0.4, several)
    scene = sample_scene(rng, 2, classes=["circle"] * 2, colors=["red", "red"])
    assert {sample_caption(scene, rng) for _ in range(200)} == {
        "two circles",
        "some circles",
        "two red circles",
        "some red circles",
    }


def test_caption_text_format() -> None:
    cross, circle = GroupPlan("cross", 1, "blue", False, True), GroupPlan("circle", 1, "red", False, False)
    squares = GroupPlan("square", 3, None, True, False)
    assert CaptionPlan([cross, circle], [], True, (0, "left of", 1)).text() == "a blue cross left of a circle"
    assert CaptionPlan([squares, cross, circle], [], True, (2, "above", 1)).text() == (
        "three squares and a circle above a blue cross"
    )
    reds = GroupPlan("circle", 2, "red", False, True)
    assert CaptionPlan([reds, GroupPlan("square", 1, "red", False, False)], [], False).text() == (
        "some red circles and a square"
    )


def test_training_batch_deterministic() -> None:
    imgs, caps = sample_training_batch(np.random.default_rng(3), 64)
    imgs2, caps2 = sample_training_batch(np.random.default_rng(3), 64)
    assert imgs.shape == (64, 32, 32, 3) and imgs.dtype == np.uint8 and len(caps) == 64
    assert np.array_equal(imgs, imgs2) and caps == caps2
    assert all(imgs[k].any() for k in range(64)) and all(caps)
    img, cap = sample_training_example(np.random.default_rng(4))
    assert img.shape == (32, 32, 3) and isinstance(cap, str)


def test_empty_scene_rejected() -> None:
    with pytest.raises(ConfigError):
        sample_caption([], np.random.default_rng(0))
    assert sample_caption([Obj("circle", "red", 1, 1, 8)], np.random.default_rng(0)).endswith("circle")
