"""No other web page can drive the likes page or the reward server (Host allowlist, Origin / Sec-Fetch-Site,
JSON only, page token, no framing); the reward server bounds memory, time and nesting; the remote client
never keeps a bad score; a label for a batch the trainer has used is refused."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from tdmr1.errors import RewardError  # noqa: E402
from tdmr1.reward_protocol import RewardOutput  # noqa: E402
from tdmr1.rewards.likes import LikesReward, LikesStore, create_likes_app  # noqa: E402
from tdmr1.rewards.protocol import SCORE_PATH, encode_image  # noqa: E402
from tdmr1.rewards.remote import RemoteReward  # noqa: E402
from tdmr1.rewards.server import Limits, ServerThread, create_reward_app, serve_in_thread  # noqa: E402

EVIL = "http://evil.example"


class _Counting:
    name = "count"

    def __init__(self, value=0.5):
        self.calls, self.value = 0, value

    def __call__(self, images, prompts, metadata):
        self.calls += 1
        return RewardOutput(np.full(len(images), self.value, dtype=np.float32))


def _likes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    prompts = ["a photo of a cat"] * 2
    reward = LikesReward(run_dir=tmp_path / "run", port=0, start=False)  # its own page starts on a free port
    app = create_likes_app(reward.session)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(out=reward(images, prompts, [{}, {}])), daemon=True)
    thread.start()
    for _ in range(500):
        if reward.session.waiting:
            break
        time.sleep(0.01)
    return reward, app, thread, result, prompts


def test_likes_page_refuses_foreign_host_cross_origin_and_non_json(tmp_path):
    reward, app, thread, result, prompts = _likes(tmp_path)
    page = {"X-Tdmr1-Page": app.state.page_token}
    ok = TestClient(app, base_url="http://127.0.0.1:8766")
    state = ok.get("/api/state", headers=page).json()
    digest = state["groups"][0]["images"][0]["hash"]
    label = json.dumps({"hash": digest, "prompt": prompts[0], "label": 1})
    rebound = TestClient(app, base_url="http://evil.example:8766")  # DNS rebinding: the attacker's name
    assert rebound.get("/api/state", headers=page).status_code == 403
    assert rebound.get("/").status_code == 403
    cross = {"Origin": EVIL, "Content-Type": "text/plain", **page}
    assert ok.post("/api/label", content=label, headers=cross).status_code == 403
    fetch_meta = {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json", **page}
    assert ok.post("/api/label", content=label, headers=fetch_meta).status_code == 403
    assert ok.post("/api/label", content=label, headers={"Content-Type": "text/plain", **page}).status_code == 415
    no_token = ok.post("/api/label", content=label, headers={"Content-Type": "application/json"})
    assert no_token.status_code == 403 and "page token" in no_token.json()["error"]
    assert ok.get("/api/state").status_code == 403  # the state needs the page's token even on loopback
    deep = b'{"hash": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    assert ok.post("/api/label", content=deep, headers={"Content-Type": "application/json", **page}).status_code == 400
    assert reward.store.count() == 0 and reward.session.needed() == 2  # nothing was labelled
    shown = ok.get("/")
    assert shown.status_code == 200 and app.state.page_token in shown.text
    csp = shown.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and shown.headers["x-frame-options"] == "DENY"
    same = {"Origin": "http://127.0.0.1:8766", "Content-Type": "application/json", **page}
    assert ok.post("/api/label", content=label, headers=same).json() == {"ok": True, "needed": 1}
    reward.session.label(state["groups"][0]["images"][1]["hash"], prompts[0], 0)
    thread.join(5)
    reward.stop()
    assert result["out"].scores.tolist() == [1.0, 0.0]


def test_a_label_for_a_consumed_batch_is_refused_and_stored_labels_are_the_used_ones(tmp_path):
    reward, app, thread, result, prompts = _likes(tmp_path)
    client = TestClient(app, base_url="http://127.0.0.1", headers={"X-Tdmr1-Page": app.state.page_token})
    images = client.get("/api/state").json()["groups"][0]["images"]
    for item, value in zip(images, (1, 0), strict=True):
        client.post("/api/label", json={"hash": item["hash"], "prompt": prompts[0], "label": value})
    thread.join(5)
    reward.stop()
    used = result["out"].scores.tolist()
    late = client.post("/api/label", json={"hash": images[0]["hash"], "prompt": prompts[0], "label": 0})
    assert late.status_code == 409  # the page may still show the batch; the trainer has used it
    stored = [r[4] for r in LikesStore(tmp_path / "run" / "likes.sqlite").rows()]
    assert sorted(stored) == sorted(int(x) for x in used) and used == [1.0, 0.0]


def test_reward_server_refuses_foreign_host_and_cross_origin(tmp_path):
    reward = _Counting()
    app = create_reward_app({"count": reward})
    body = {"prompts": ["p"], "images": [encode_image(np.zeros((8, 8, 3), np.uint8))]}
    assert TestClient(app, base_url="http://evil.example:8700").get("/health").status_code == 403
    assert TestClient(app, base_url="http://evil.example:8700").post(SCORE_PATH, json=body).status_code == 403
    ok = TestClient(app, base_url="http://127.0.0.1:8700")
    assert ok.post(SCORE_PATH, content=json.dumps(body), headers={"Origin": EVIL}).status_code == 403
    assert reward.calls == 0
    assert ok.post(SCORE_PATH, json=body).json()["scores"] == [0.5]
    assert TestClient(app, base_url="http://localhost:8700").get("/health").status_code == 200
    allowed = create_reward_app({"count": reward}, allowed_hosts=("rewards.lan",))
    assert TestClient(allowed, base_url="http://rewards.lan:8700").get("/health").status_code == 200


def test_deeply_nested_json_and_string_scores_are_4xx_or_one_line_500():
    app = create_reward_app({"count": _Counting(), "text": lambda i, p, m: RewardOutput(["0.5"] * len(i))})
    client = TestClient(app, base_url="http://127.0.0.1")
    deep = client.post(SCORE_PATH, content=b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 400 and "malformed JSON" in deep.json()["error"]
    body = {"reward": "text", "prompts": ["p"], "images": [encode_image(np.zeros((8, 8, 3), np.uint8))]}
    answer = client.post(SCORE_PATH, json=body)
    assert answer.status_code == 500 and "not numbers" in answer.json()["error"]


_MEMORY_PROBE = r"""
import base64, json, resource, struct, sys, zlib
import numpy as np
from fastapi.testclient import TestClient
from tdmr1.rewards.server import create_reward_app

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

side = 9000
z, row, parts = zlib.compressobj(9), b"\0" * (1 + 3 * side), []
for _ in range(side):
    parts.append(z.compress(row))
parts.append(z.flush())
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
body = json.dumps({"prompts": ["p"] * 4, "images": [base64.b64encode(png).decode()] * 4}).encode()
reward = lambda images, prompts, metadata: np.zeros(len(images), np.float32)
out = {"body_mb": len(body) / 2**20}
for key, size in (("world", (32, 32)), ("any_size", None)):
    client = TestClient(create_reward_app({"r": reward}, image_size=size), base_url="http://127.0.0.1")
    client.get("/health")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answer = client.post("/v1/score", content=body)
    out[key] = [answer.status_code, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024]
print(json.dumps(out))
"""


def test_oversized_images_are_refused_before_decoding():
    """Four 9000 x 9000 PNGs (a small body): refused from their headers, memory growth under 100 MB."""
    run = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["body_mb"] < 2
    assert out["world"][0] == 422 and out["any_size"][0] == 413, out
    assert out["world"][1] < 100 and out["any_size"][1] < 100, out  # MiB of peak growth


def test_stalled_connections_and_hung_rewards_time_out():
    gate = threading.Event()
    calls = []

    def hung(images, prompts, metadata):
        calls.append(1)
        gate.wait(20)
        return np.zeros(len(images), np.float32)

    app = create_reward_app({"hung": hung}, limits=Limits(read_timeout_s=0.5, reward_timeout_s=0.5))
    srv = ServerThread(app, read_timeout_s=0.5).start()
    try:
        idle = socket.create_connection((srv.host, srv.port), timeout=5)
        t0 = time.monotonic()
        assert idle.recv(100) == b"" and time.monotonic() - t0 < 4  # closed: no request within the timeout
        idle.close()
        half = socket.create_connection((srv.host, srv.port), timeout=5)
        half.sendall(b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        assert b" 408 " in half.recv(1000).split(b"\r\n", 1)[0]  # the body never came
        half.close()
        body = {"prompts": ["p"], "images": [encode_image(np.zeros((8, 8, 3), np.uint8))]}
        first = httpx.post(srv.url + SCORE_PATH, json=body, timeout=10)
        assert first.status_code == 504, first.text
        t0 = time.monotonic()
        second = httpx.post(srv.url + SCORE_PATH, json=body, timeout=10)
        assert second.status_code == 503 and time.monotonic() - t0 < 0.4, second.text  # at once, not blocked
        assert httpx.get(srv.url + "/health", timeout=5).status_code == 200  # the server still answers
        gate.set()
        for _ in range(100):
            if httpx.post(srv.url + SCORE_PATH, json=body, timeout=10).status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server never recovered from the hung reward")
    finally:
        gate.set()
        srv.stop()
    assert len(calls) >= 2


def test_serve_reward_stops_on_sigterm_with_a_hung_reward(tmp_path):
    (tmp_path / "hang.py").write_text(
        "import time\nclass Hang:\n    name = 'hang'\n    def __call__(self, images, prompts, metadata):\n"
        "        time.sleep(600)\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "tdmr1", "serve-reward", "--port", str(port), "--reward", f"{tmp_path}/hang.py:Hang"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"prompts": ["p"], "images": [encode_image(np.zeros((32, 32, 3), np.uint8))]}

        def post() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server goes away under it
                httpx.post(f"http://127.0.0.1:{port}{SCORE_PATH}", json=body, timeout=30)

        threading.Thread(target=post, daemon=True).start()
        time.sleep(1.0)  # the reward is now hung
        proc.terminate()
        proc.wait(15)  # raises TimeoutExpired if SIGTERM did not stop it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "http://0.0.0.0" not in (proc.stdout.read() if proc.stdout else "")


def test_remote_client_never_caches_inf_and_bounds_the_answer(tmp_path):
    app = FastAPI()
    answers = iter([b'{"scores": [1e39]}', b'{"scores": ["0.5"]}', b'{"scores": [0.25]}', b" " * (2 << 20)])

    @app.post(SCORE_PATH)
    async def score(request: Request):
        await request.body()
        return Response(next(answers), media_type="application/json")

    srv = serve_in_thread(app, "127.0.0.1", 0)
    images = np.zeros((1, 8, 8, 3), np.uint8)
    try:
        client = RemoteReward(srv.url, cache=tmp_path / "c.sqlite", retries=0)
        with pytest.raises(RewardError, match="out-of-range"):
            client(images, ["p"], [{}])
        with sqlite3.connect(tmp_path / "c.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0  # nothing wrong was cached
        with pytest.raises(RewardError, match=r"not a number \('0.5'\)"):
            client(images, ["p"], [{}])
        assert client(images, ["p"], [{}]).scores.tolist() == [0.25]  # the rerun asks the server again
        small = RemoteReward(srv.url, cache=False, retries=0)
        small._http.max_response_bytes = 1 << 20
        with pytest.raises(RewardError, match="answered more than"):
            small(images, ["q"], [{}])
    finally:
        srv.stop()
