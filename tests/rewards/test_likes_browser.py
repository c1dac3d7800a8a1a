"""The likes page in a real headless Chromium (skipped without one): a scripted person reads each image
and presses L (like) for red shapes, D (dislike) otherwise; the trainer's reward gets exactly those labels.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
ending in NUL on file descriptors 3 and 4), so no extra package is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

from tdmr1.rewards.likes import LikesReward, LikesStore  # noqa: E402
from tdmr1.rewards.protocol import image_hash  # noqa: E402


def _move_fds(read_end: int, write_end: int) -> None:
    """In the child: the pipe chromium reads on fd 3, the one it writes on fd 4 (dup first: no clobbering)."""
    a, b = os.dup(read_end), os.dup(write_end)
    os.dup2(a, 3)
    os.dup2(b, 4)


class _Browser:
    def __init__(self, profile):
        r_in, w_in = os.pipe()  # we write -> chromium reads fd 3
        r_out, w_out = os.pipe()  # chromium writes fd 4 -> we read
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            close_fds=False, preexec_fn=lambda: _move_fds(r_in, w_out),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(r_in)
        os.close(w_out)
        self.w, self.r = os.fdopen(w_in, "wb", buffering=0), os.fdopen(r_out, "rb", buffering=0)
        self.buf, self.next_id, self.session = b"", 0, None

    def send(self, method, params=None, timeout_s=30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        self.w.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            while b"\0" not in self.buf:
                chunk = self.r.read(65536)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply.get("result", {})
        raise TimeoutError(method)

    def open(self, url):
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def js(self, expression):
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"].get("value")

    def key(self, char):
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": char, "text": char if kind == "keyDown" else ""})

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


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
    browser = _Browser(tmp_path / "profile")
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
