"""RL from likes: SQLite labels, the page's endpoints (FastAPI TestClient), reuse on resume, replay."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from tdmr1.errors import RewardError  # noqa: E402
from tdmr1.rewards.likes import LikesReward, LikesStore, create_likes_app  # noqa: E402
from tdmr1.rewards.protocol import image_hash  # noqa: E402
from tdmr1.rewards.registry import make_reward  # noqa: E402
from tdmr1.worlds import get_world  # noqa: E402


def _batch():
    """Two groups of three images (G = 3): the hidden rule is 'the image is mostly red'."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, (6, 32, 32, 3), dtype=np.uint8)
    red = [0, 2, 4]
    images[red, :, :, 0] = 220
    prompts = ["a photo of a circle"] * 3 + ["a photo of a square"] * 3
    return images, prompts, [{"prompt": p} for p in prompts], red


def _call_in_thread(reward, images, prompts, metas):
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(out=reward(images, prompts, metas)), daemon=True)
    thread.start()
    return thread, result


def _page_headers(get) -> dict:
    """What the page's script sends: the per-run page token it finds in the page."""
    page = get("/").text
    return {"X-Tdmr1-Page": page.split('name="tdmr1-page-token" content="', 1)[1].split('"', 1)[0]}


def _client(app) -> TestClient:
    """A client that talks to the app as its page does (loopback Host, the page's token)."""
    client = TestClient(app, base_url="http://127.0.0.1:8766")
    client.headers.update(_page_headers(client.get))
    return client


def _wait_for_batch(client: TestClient, q: str = "") -> dict:
    for _ in range(500):  # bounded: 5 s
        state = client.get("/api/state" + q).json()
        if state["waiting"]:
            return state
        time.sleep(0.01)
    raise AssertionError("the reward never published its batch")


def test_store_one_row_per_image(tmp_path):
    store = LikesStore(tmp_path / "l.sqlite")
    store.put("r", 0, "p", "h1", 1)
    store.put("r", 0, "p", "h2", 0)
    store.put("r", 1, "p", "h1", 0)  # changed mind: still one row
    assert store.lookup("p", "h1") == 0 and store.lookup("p", "h2") == 0 and store.lookup("q", "h1") is None
    assert store.lookup("p", "h1", run="other") is None
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in store.rows()] == [("r", 0, "p", "h2", 0), ("r", 1, "p", "h1", 0)]
    assert store.like_rate_curve("r") == [(0, 0.0, 1), (1, 0.0, 1)]


def test_page_labels_stored_reused_and_replayed(tmp_path):
    images, prompts, metas, red = _batch()
    reward = LikesReward(run_dir=tmp_path / "run", start=False)
    assert reward.interactive and reward.token is None
    client = _client(create_likes_app(reward.session))
    thread, result = _call_in_thread(reward, images, prompts, metas)
    state = _wait_for_batch(client)
    assert state["needed"] == 6 and state["batch"] == 6 and state["iteration"] == 0
    assert [g["prompt"] for g in state["groups"]] == ["a photo of a circle", "a photo of a square"]
    assert all(len(g["images"]) == 3 for g in state["groups"])
    page = client.get("/")
    assert page.status_code == 200 and "like" in page.text and "keydown" in page.text
    digests = [x["hash"] for g in state["groups"] for x in g["images"]]
    assert digests == [image_hash(i) for i in images]
    png = client.get(f"/api/image/{digests[0]}")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get("/api/image/deadbeef").status_code == 404
    assert client.post("/api/label", json={"hash": digests[0], "prompt": prompts[0], "label": 5}).status_code == 422
    assert client.post("/api/label", content=b"nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/api/label", json={"hash": "x", "prompt": prompts[0], "label": 1}).status_code == 409
    for i, digest in enumerate(digests):  # the scripted person likes exactly the red images
        answer = client.post("/api/label", json={"hash": digest, "prompt": prompts[i], "label": int(i in red)})
        assert answer.status_code == 200 and answer.json()["needed"] == 5 - i
    thread.join(5)
    out = result["out"]
    assert out.scores.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0] and out.info["correct"][0] is True
    rows = LikesStore(tmp_path / "run" / "likes.sqlite").rows()
    assert len(rows) == 6 and {r[0] for r in rows} == {"run"} and {r[1] for r in rows} == {0}
    assert [(r[2], r[3], r[4]) for r in rows] == [(prompts[i], digests[i], int(i in red)) for i in range(6)]
    state = client.get("/api/state").json()
    assert not state["waiting"] and state["needed"] == 0 and state["total_labels"] == 6
    assert state["curve"] == [{"iteration": 0, "like_rate": 0.5, "n": 6}]
    # a resumed run (a new reward on the same folder) re-rolls the same images: no question asked
    resumed = LikesReward(run_dir=tmp_path / "run", start=False)
    assert resumed(images, prompts, metas).scores.tolist() == out.scores.tolist()
    # replay, without a person, from the stored labels (another folder's database)
    replay = make_reward({"likes": {"replay": True, "db": str(tmp_path / "run" / "likes.sqlite")}}, get_world("shapes"))
    assert isinstance(replay, LikesReward) and not replay.interactive and replay.server is None
    assert np.array_equal(replay(images, prompts, metas).scores, out.scores)
    with pytest.raises(RewardError, match="likes replay: 1 of 6 images have no stored label"):
        changed = images.copy()
        changed[3, 0, 0, 0] ^= 1
        replay(changed, prompts, metas)


def test_token_required_when_set(tmp_path):
    reward = LikesReward(run_dir=tmp_path, host="0.0.0.0", start=False)  # never bound in the test
    assert reward.token and len(reward.token) >= 16
    app = create_likes_app(reward.session, reward.token)
    client = TestClient(app, base_url="http://127.0.0.1")
    assert client.get("/").status_code == 401 and client.get("/api/state").status_code == 401
    assert client.get(f"/?token={reward.token}").status_code == 200
    page = {"X-Tdmr1-Page": app.state.page_token}
    assert client.get("/api/state", headers={"X-Token": reward.token, **page}).status_code == 200
    assert client.post("/api/label", json={"hash": "x", "prompt": "p", "label": 1}).status_code == 401


def test_page_served_on_loopback_and_samples(tmp_path):
    (tmp_path / "run" / "samples").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "run" / "samples" / "before.png")
    reward = make_reward({"likes": {"port": 0}}, get_world("shapes"), run_dir=tmp_path / "run")
    try:
        assert reward.url.startswith("http://127.0.0.1:") and reward.server.host == "127.0.0.1"
        assert httpx.get(reward.url, timeout=5).status_code == 200
        headers = _page_headers(lambda path: httpx.get(reward.server.url + path, timeout=5))
        state = httpx.get(reward.server.url + "/api/state", headers=headers, timeout=5).json()
        assert state["samples"] == ["before.png"] and not state["waiting"]
        assert httpx.get(reward.server.url + "/api/sample/before.png", timeout=5).content[:4] == b"\x89PNG"
        assert httpx.get(reward.server.url + "/api/sample/..%2Fx.png", timeout=5).status_code == 404
    finally:
        reward.stop()
