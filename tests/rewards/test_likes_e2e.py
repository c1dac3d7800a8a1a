"""Learning from a person's likes, end to end (slow): a real ``reward: likes`` TDM-R1 run of the shipped
student on ShapesEval, labelled by a scripted person in a real headless Chromium (the hidden rule and the
prompt split are also checked by a fast test).

The person opens the page, and for every image of every batch clicks it, reads its pixels from the page
(a canvas copy of the shown PNG: the person never reads the prompt), presses L when the hidden rule holds
(the checker finds a red shape, ``benchmarks/likes_red.py``) and D otherwise. After the run, the student
and the trained generator draw the same held-out prompts (disjoint from the training ones) with the same
seeds; the rate of red shapes must rise with an exact McNemar p below 0.01, and the SQLite file must hold
one row per labelled image, with the person's label for the exact pixels it saw.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from bench_module import load_benchmark  # noqa: E402
from devtools_browser import CHROMIUM, Browser  # noqa: E402 - the DevTools-pipe driver
from tdmr1.config import load_config  # noqa: E402
from tdmr1.r1.config import RLConfig  # noqa: E402
from tdmr1.r1.trainer import TDMR1Trainer  # noqa: E402
from tdmr1.rewards.likes import LikesSession, LikesStore  # noqa: E402
from tdmr1.rewards.protocol import image_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
likes_red = load_benchmark("likes_red")

# the selected image's pixels, as the page shows them (null until the PNG has loaded)
_LOOK = """(() => {
  const img = document.querySelector('.cell.sel img');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return {w: c.width, h: c.height, px: Array.from(g.getImageData(0, 0, c.width, c.height).data)};
})()"""
_OPEN = "document.querySelectorAll('.cell:not(.like):not(.dislike)').length"


class _Person(threading.Thread):
    """Labels every batch the page shows until ``stop`` is set; keeps (image hash, label) of each label.

    Should the browser fail, the error is kept (the test fails on it) and the pending batches are
    dismissed straight through ``session`` so that the trainer, which waits on labels, never hangs."""

    def __init__(self, browser: Browser, url: str, session: LikesSession):
        super().__init__(daemon=True)
        self.browser, self.url, self.session = browser, url, session
        self.stop, self.seen, self.error = threading.Event(), [], None

    def run(self) -> None:
        try:
            self.browser.open(self.url)
            while not self.stop.is_set():
                if not self.browser.js(_OPEN):
                    time.sleep(0.2)  # no batch yet, or the trainer is working
                    continue
                self.browser.js("document.querySelector('.cell:not(.like):not(.dislike)').click()")
                shown = self.browser.js(_LOOK)
                if shown is None:
                    time.sleep(0.05)
                    continue
                image = np.asarray(shown["px"], dtype=np.uint8).reshape(shown["h"], shown["w"], 4)[..., :3]
                label = int(likes_red.has_red_shape(image[None])[0])
                self.browser.key("l" if label else "d")
                self.seen.append((image_hash(image), label))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            while not self.stop.wait(0.2):
                for group in self.session.state()["groups"]:
                    for item in group["images"]:
                        if item["label"] is None:
                            with contextlib.suppress(KeyError):  # the batch moved on meanwhile
                                self.session.label(item["hash"], group["prompt"], 0)


def test_hidden_rule_on_clean_renders_and_disjoint_prompts():
    from tdmr1.worlds.shapes.prompts import colors
    from tdmr1.worlds.shapes.world import render_oracle

    rng = np.random.default_rng(0)
    hues = ("red", "blue", "pink", "orange")
    scenes = [render_oracle(colors(c, cls), rng) for c in hues for cls in ("circle", "cross")]
    assert likes_red.has_red_shape(np.stack(scenes)).tolist() == [True] * 2 + [False] * 6
    train, held = likes_red.prompt_split()
    assert len(held) == 32 and len(train) == 40
    assert not {md["prompt"] for md in train} & {md["prompt"] for md in held}
    assert all("color" not in clause for md in train + held for clause in md["include"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
@pytest.mark.skipif(not (ROOT / likes_red.STUDENT / "model.safetensors").is_file(), reason="no shapes student")
def test_a_person_who_likes_red_shapes_teaches_the_generator(tmp_path):
    t0, cpu0 = time.time(), time.process_time()
    overrides = [f"init={ROOT / likes_red.STUDENT}", f"iterations={likes_red.ITERATIONS}", "seed=0"]
    overrides += [*likes_red.SETTINGS, "checkpoint_every=1000", "reward={likes: {port: 0}}"]
    trainer = TDMR1Trainer(load_config(RLConfig, None, overrides), tmp_path / "run", quiet=True)
    train, held = likes_red.prompt_split()
    trainer.pool = train
    person = _Person(Browser(tmp_path / "profile"), trainer.reward.url, trainer.reward.session)
    person.start()
    try:
        model = trainer.run(resume=False)
    finally:
        person.stop.set()
        person.join(30)
        person.browser.close()
        trainer.reward.stop()
    assert person.error is None, person.error
    train_cpu = time.process_time() - cpu0

    # every label is in SQLite: one row per rollout image, the person's label for the pixels it saw
    batch = trainer.cfg.prompts_per_iteration * trainer.cfg.group_size
    rows = LikesStore(tmp_path / "run" / "likes.sqlite").rows()
    assert len(person.seen) == len(rows) == likes_red.ITERATIONS * batch
    assert sorted((r[3], r[4]) for r in rows) == sorted(person.seen)
    assert sorted({r[1] for r in rows}) == list(range(likes_red.ITERATIONS))

    result = likes_red.red_rates(ROOT / likes_red.STUDENT, model, held)
    result |= {"train_cpu_s": train_cpu, "wall_s": time.time() - t0, "likes": sum(r[4] for r in rows)}
    print("likes e2e:", json.dumps(result))
    assert result["rate_after"] > result["rate_before"] + 0.1, result
    assert result["gained"] > result["lost"] and result["mcnemar_p"] < 0.01, result
