"""``geneval-det``: GenEval's rules on a user-supplied detector (fake detectors with known boxes).

Each of GenEval's six tags passes and fails as GenEval's ``evaluate_images.py`` would; GenEval's selection
(confidence 0.3 / 0.9 for counting, most confident first, 16 per class, no suppression); colours from the
detector or the hue fallback; the ShapesEval checker and this reward agree (one rule implementation); the
HTTP detector protocol; the registry spec."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tdmr1.errors import ConfigError, DataError, RewardError
from tdmr1.rewards.colors import name_color, pixel_colors
from tdmr1.rewards.geneval_det import GenEvalDetReward, box_iou
from tdmr1.rewards.registry import make_reward
from tdmr1.worlds import get_world

H = W = 64


def obj(label: str, box: list[float], score: float = 0.95, **extra: Any) -> dict[str, Any]:
    return {"label": label, "score": score, "box": box, **extra}


def fixed(*per_image: list[dict[str, Any]]) -> Callable[[np.ndarray], list[list[dict[str, Any]]]]:
    """A fake detector that returns the given objects for images 0, 1, ... of each batch."""

    def detect(images: np.ndarray) -> list[list[dict[str, Any]]]:
        assert len(images) == len(per_image)
        return [list(objs) for objs in per_image]

    return detect


def run(metadata: dict[str, Any], *per_image: list[dict[str, Any]], image: np.ndarray | None = None, **kw: Any):
    n = len(per_image)
    images = np.zeros((n, H, W, 3), np.uint8) if image is None else np.stack([image] * n)
    reward = GenEvalDetReward(fixed(*per_image), **kw)
    return reward(images, [metadata["prompt"]] * n, [metadata] * n)


SINGLE = {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"}
TWO = {
    "tag": "two_object",
    "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1}],
    "prompt": "a photo of a dog and a cat",
}
COUNTING = {
    "tag": "counting",
    "include": [{"class": "apple", "count": 3}],
    "exclude": [{"class": "apple", "count": 4}],
    "prompt": "a photo of three apples",
}
COLORS = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"}
POSITION = {
    "tag": "position",
    "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1, "position": ["left of", 0]}],
    "prompt": "a photo of a cat left of a dog",
}
COLOR_ATTR = {
    "tag": "color_attr",
    "include": [{"class": "car", "count": 1, "color": "red"}, {"class": "bench", "count": 1, "color": "blue"}],
    "prompt": "a photo of a red car and a blue bench",
}
BOX = [10, 10, 30, 30]


def test_single_object_and_the_confidence_threshold() -> None:
    out = run(SINGLE, [obj("dog", BOX, 0.95)], [obj("dog", BOX, 0.3)], [obj("cat", BOX)])
    assert out.info["correct"] == [True, False, False]  # 0.3 is not > 0.3
    assert out.scores.tolist() == [1.0, 0.0, 0.0]
    assert out.info["reason"] == ["ok", "expected dog>=1, found 0", "expected dog>=1, found 0"]


def test_two_objects() -> None:
    out = run(TWO, [obj("dog", BOX), obj("cat", [40, 40, 60, 60])], [obj("dog", BOX)])
    assert out.info["correct"] == [True, False]
    assert out.scores.tolist() == [1.0, 0.5]
    assert out.info["reason"][1] == "expected cat>=1, found 0"


def test_counting_uses_the_counting_threshold_and_the_exclude_clause() -> None:
    three = [obj("apple", [i * 15, 0, i * 15 + 10, 10]) for i in range(3)]
    weak = [*three[:2], obj("apple", [45, 0, 55, 10], 0.5)]  # 0.5 < 0.9: not counted on a counting prompt
    four = [*three, obj("apple", [0, 40, 10, 50])]
    out = run(COUNTING, three, weak, four)
    assert out.info["correct"] == [True, False, False]
    assert out.scores == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert out.info["reason"][1:] == ["expected apple>=3, found 2", "expected apple<4, found 4"]
    # the same weak apple counts on a prompt that is not tagged counting (threshold 0.3)
    assert run({**COUNTING, "tag": "two_object"}, weak).info["correct"] == [True]


def test_colors_from_the_detector_on_the_most_confident_object() -> None:
    out = run(
        COLORS,
        [obj("car", BOX, color="red")],
        [obj("car", BOX, color="blue")],
        [obj("car", BOX, 0.9, color="blue"), obj("car", [40, 40, 60, 60], 0.8, color="red")],
    )
    assert out.info["correct"] == [True, False, False]  # GenEval judges the top-1 car only
    assert out.info["reason"][1] == "expected red car>=1, found 0 red; and 1 blue"
    assert out.info["detections"][2][0] == {
        "label": "car",
        "score": 0.9,
        "box": [10.0, 10.0, 30.0, 30.0],
        "color": "blue",
    }


def test_position_uses_geneval_margin() -> None:
    dog = obj("dog", [30, 20, 50, 40])
    out = run(
        POSITION,
        [dog, obj("cat", [0, 20, 20, 40])],  # centre 20 px to the left, boxes 20 px wide: margin 4 px
        [dog, obj("cat", [50, 20, 62, 40])],  # right of
        [dog, obj("cat", [27, 20, 47, 40])],  # 3 px to the left: inside the 0.1 x (20 + 20) margin
        [obj("cat", [0, 20, 20, 40])],  # no dog: no target
    )
    assert out.info["correct"] == [True, False, False, False]
    assert out.info["reason"][1:] == [
        "expected cat left of target, found right of target",
        "expected cat left of target, found no relation to target",
        "expected dog>=1, found 0; no target for cat to be left of",
    ]
    assert out.scores == pytest.approx([1.0, 2 / 3, 2 / 3, 1 / 3])


def test_color_attribution_with_the_hue_fallback() -> None:
    image = np.zeros((H, W, 3), np.uint8)
    image[10:30, 10:30] = (210, 30, 40)  # red car
    image[40:60, 40:60] = (30, 60, 220)  # blue bench
    good = [obj("car", [10, 10, 30, 30]), obj("bench", [40, 40, 60, 60])]
    swapped = [obj("car", [40, 40, 60, 60]), obj("bench", [10, 10, 30, 30])]
    out = run(COLOR_ATTR, good, swapped, image=image)
    assert out.info["correct"] == [True, False]
    assert out.scores.tolist() == [1.0, pytest.approx(0.5)]
    assert out.info["detections"][0][0]["color"] == "red"
    # color="detector" refuses to guess; color="hue" ignores the detector's colour
    with pytest.raises(RewardError, match="gave no 'color' for a car"):
        run(COLOR_ATTR, good, image=image, color="detector")
    lying = [obj("car", [10, 10, 30, 30], color="green"), obj("bench", [40, 40, 60, 60], color="green")]
    assert run(COLOR_ATTR, lying, image=image, color="hue").info["correct"] == [True]
    assert run(COLOR_ATTR, lying, image=image).info["correct"] == [False]


def test_hue_rule_names_geneval_colours_and_prefers_the_mask() -> None:
    swatches = {
        "red": (220, 40, 40),
        "orange": (245, 140, 20),
        "yellow": (240, 230, 40),
        "green": (40, 190, 60),
        "blue": (40, 90, 230),
        "purple": (150, 60, 200),
        "pink": (250, 130, 190),
        "brown": (130, 80, 30),
        "black": (15, 15, 15),
        "white": (245, 245, 245),
    }
    from tdmr1.geneval.rules import GENEVAL_COLORS

    idx = pixel_colors(np.array(list(swatches.values()), np.uint8))
    assert [GENEVAL_COLORS[i] for i in idx] == list(swatches)
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :] = (40, 90, 230)  # a blue box ...
    image[28:36, 28:36] = (245, 140, 20)  # ... with a small orange object inside
    mask = np.zeros((H, W), bool)
    mask[28:36, 28:36] = True
    assert name_color(image, [0, 0, 64, 64]) == "blue"
    assert name_color(image, [0, 0, 64, 64], mask) == "orange"


def test_selection_max_objects_and_optional_suppression() -> None:
    many = [obj("apple", [i, 0, i + 10, 10]) for i in range(20)]
    out = run(
        {**COUNTING, "include": [{"class": "apple", "count": 16}], "exclude": [{"class": "apple", "count": 17}]}, many
    )
    assert out.info["correct"] == [True] and len(out.info["detections"][0]) == 16
    twin = [obj("dog", BOX), obj("dog", BOX, 0.92)]
    two_dogs = {"tag": "counting", "include": [{"class": "dog", "count": 2}], "prompt": "a photo of two dogs"}
    assert run(two_dogs, twin).info["correct"] == [True]  # GenEval's default max_overlap 1.0: no suppression
    assert run(two_dogs, twin, nms_threshold=0.5).info["correct"] == [False]
    assert box_iou(BOX, BOX) == 1.0 and box_iou([0, 0, 9, 9], [10, 0, 19, 9]) == 0.0


def test_shapes_checker_and_geneval_det_share_one_rule_implementation() -> None:
    """The embedded checker's detections, handed to geneval-det as a detector, give the checker's verdicts."""
    from tdmr1.worlds.shapes.checker import detect_batch

    world = get_world("shapes")
    suite = world.benchmark_suite()[::12]
    rng = np.random.default_rng(0)
    images = np.stack([world.render_oracle(md, rng) for md in suite])
    metadata = suite[1:] + suite[:1]  # each image judged against the next prompt too: failures of every kind

    def detector(batch: np.ndarray) -> list[list[dict[str, Any]]]:
        # confidence grows with area, so "most confident first" is the checker's "largest first"
        return [
            [obj(d.cls, list(d.bbox), 0.95 + 0.04 * d.area / (H * W), color=d.color) for d in objs]
            for objs in detect_batch(batch)
        ]

    ours = GenEvalDetReward(detector)
    verdicts = []
    for md in (suite, metadata):
        prompts = [m["prompt"] for m in md]
        a, b = world.make_reward()(images, prompts, md), ours(images, prompts, md)
        assert a.info["correct"] == b.info["correct"] and a.info["reason"] == b.info["reason"]
        assert np.array_equal(a.scores, b.scores)
        verdicts += b.info["correct"]
    assert 0 < np.mean(verdicts) < 1


def test_bad_metadata_and_bad_detector_answers() -> None:
    with pytest.raises(DataError, match="metadata item 0: metadata has no 'include' clauses .*JSONL"):
        run({"prompt": "a dog"}, [])
    with pytest.raises(RewardError, match="returned 2 results for 1 images"):
        GenEvalDetReward(lambda images: [[], []])(np.zeros((1, H, W, 3), np.uint8), ["x"], [SINGLE])
    with pytest.raises(RewardError, match=r"image 0, object 0: 'box' must be \[x0, y0, x1, y1\]"):
        run(SINGLE, [obj("dog", [10, 10, 5, 30])])
    with pytest.raises(RewardError, match="'score' must be a finite number"):
        run(SINGLE, [obj("dog", BOX, float("nan"))])
    with pytest.raises(RewardError, match="mask of shape"):
        run(SINGLE, [obj("dog", BOX, mask=np.ones((8, 8), bool))])
    with pytest.raises(ConfigError, match="color must be one of"):
        GenEvalDetReward(fixed(), color="clip")


class _DetectorServer(BaseHTTPRequestHandler):
    """Answers POST /v1/detect: a red car with a mask on every image; 500 when asked for 3 images."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        images = body["images"]
        if len(images) == 3:
            self._answer(500, {"error": "detector out of memory"})
            return
        mask = np.zeros((H, W), np.uint8)
        mask[10:30, 10:30] = 255
        buf = io.BytesIO()
        Image.fromarray(mask, mode="L").save(buf, format="PNG")
        car = obj("car", BOX, mask=base64.b64encode(buf.getvalue()).decode())
        self._answer(200, {"detections": [[car] for _ in images]})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_detector_protocol_and_registry_spec(tmp_path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DetectorServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    image = np.zeros((H, W, 3), np.uint8)
    image[10:30, 10:30] = (220, 40, 40)
    image[:10] = (40, 90, 230)  # blue outside the mask
    try:
        reward = make_reward({"geneval-det": {"detector": url, "retries": 0}}, get_world("shapes"))
        out = reward(np.stack([image] * 2), [COLORS["prompt"]] * 2, [COLORS] * 2)
        assert out.info["correct"] == [True, True] and out.info["detections"][0][0]["color"] == "red"
        with pytest.raises(RewardError, match="answered 500: detector out of memory"):
            reward(np.stack([image] * 3), [COLORS["prompt"]] * 3, [COLORS] * 3)
    finally:
        server.shutdown()
        server.server_close()
    det = tmp_path / "my_det.py"
    det.write_text(
        "def detect(images):\n    return [[{'label': 'dog', 'score': 0.9, 'box': [0, 0, 8, 8]}] for _ in images]\n"
    )
    reward = make_reward({"geneval-det": {"detector": f"{det}:detect"}}, get_world("shapes"))
    assert reward(np.zeros((1, H, W, 3), np.uint8), ["a dog"], [SINGLE]).info["correct"] == [True]
    with pytest.raises(ConfigError, match="geneval-det needs a detector"):
        make_reward("geneval-det", get_world("shapes"))
    with pytest.raises(ConfigError, match="unknown option 'thresh'"):
        make_reward({"geneval-det": {"detector": f"{det}:detect", "thresh": 0.5}}, get_world("shapes"))
    with pytest.raises(ConfigError, match="apply to http:// detectors only"):
        make_reward({"geneval-det": {"detector": f"{det}:detect", "retries": 1}}, get_world("shapes"))
