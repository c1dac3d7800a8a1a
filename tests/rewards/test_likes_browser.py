"""The likes page in a real headless Chromium (skipped without one): a scripted person reads each image
and presses L (like) for red shapes, D (dislike) otherwise; the trainer's reward gets exactly those labels.

Chromium is driven over the DevTools protocol on a pipe (``tests/devtools_browser.py``), so no extra package
is needed.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from devtools_browser import CHROMIUM, Browser  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

from tdmr1.rewards.likes import LikesReward, LikesStore  # noqa: E402
from tdmr1.rewards.protocol import image_hash  # noqa: E402


def _is_red(image):
    return bool((np.abs(image.astype(int) - [220, 40, 40]).sum(axis=-1) < 60).sum() >= 12)


def test_a_scripted_person_likes_red_shapes_in_chromium(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 50, (8, 32, 32, 3), dtype=np.uint8)
    red = [1, 2, 5]
    for i in red:
        images[i, 8:20, 8:20] = (220, 40, 40)
    prompts = ["a photo of a red square"] * 4 + ["a photo of a blue circle"] * 4
    by_hash = {image_hash(img): img for img in images}
    reward = LikesReward(run_dir=tmp_path / "run", port=0)
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=reward(images, prompts, [{}] * 8)), daemon=True)
    thread.start()
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(reward.url)
        for _ in range(300):  # bounded: the page has rendered the batch
            if browser.js("document.querySelectorAll('.cell img').length") == 8:
                break
            time.sleep(0.05)
        hashes = browser.js("Array.from(document.querySelectorAll('.cell img')).map(i => i.src.split('/').pop())")
        assert sorted(hashes) == sorted(by_hash)
        for _ in hashes:  # the person looks at the selected image, presses L or D (the page moves on)
            selected = browser.js("document.querySelector('.cell.sel img').src.split('/').pop()")
            browser.key("l" if _is_red(by_hash[selected]) else "d")
            time.sleep(0.1)
        thread.join(20)
    finally:
        browser.close()
        reward.stop()
    out = result["out"]
    assert out.scores.tolist() == [float(i in red) for i in range(8)]
    rows = LikesStore(tmp_path / "run" / "likes.sqlite").rows()
    assert sorted((r[3], r[4]) for r in rows) == sorted((image_hash(images[i]), int(i in red)) for i in range(8))
