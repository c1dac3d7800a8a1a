"""Reward server and remote client (127.0.0.1 only): protocol, limits, cache, failures, composite rewards."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import Response  # noqa: E402

from tdmr1.errors import ConfigError, RewardError  # noqa: E402
from tdmr1.reward_protocol import RewardOutput  # noqa: E402
from tdmr1.rewards.composite import CompositeReward, reward_parts  # noqa: E402
from tdmr1.rewards.protocol import SCORE_PATH, encode_image  # noqa: E402
from tdmr1.rewards.registry import REWARDS, make_reward  # noqa: E402
from tdmr1.rewards.remote import RemoteReward  # noqa: E402
from tdmr1.rewards.server import Limits, create_reward_app, serve_in_thread  # noqa: E402
from tdmr1.worlds import get_world  # noqa: E402


class _Fixed:
    """Scores chosen by the test: a constant, NaN, an exception or a slow answer."""

    def __init__(self, name: str, mode: str = "const", value: float = 0.25):
        self.name, self.mode, self.value = name, mode, value

    def __call__(self, images, prompts, metadata):
        if self.mode == "raise":
            raise ValueError("detector crashed")
        if self.mode == "slow":
            time.sleep(1.0)
        value = np.nan if self.mode == "nan" else self.value
        return RewardOutput(np.full(len(images), value, dtype=np.float32))


def _app(**kw):
    world = get_world("shapes")
    rewards = {
        "shapes": world.make_reward(),
        "const": _Fixed("const"),
        "nan": _Fixed("nan", "nan"),
        "boom": _Fixed("boom", "raise"),
        "slow": _Fixed("slow", "slow"),
    }
    return create_reward_app(rewards, default="shapes", image_size=world.image_size, **kw)


@pytest.fixture(scope="module")
def server():
    srv = serve_in_thread(_app(limits=Limits(max_images=16, max_body_bytes=400_000)), "127.0.0.1", 0)
    yield srv
    srv.stop()


def _batch(n: int = 12):
    """Oracle renders (correct) and shuffled / noisy images (mostly wrong) for shapes training prompts."""
    world = get_world("shapes")
    metas = world.training_prompts()[:n]
    rng = np.random.default_rng(0)
    images = np.stack([world.render_oracle(md, rng) for md in metas])
    images[1::3] = images[1::3][::-1]  # someone else's image
    images[2::3] = rng.integers(0, 256, images[2::3].shape, dtype=np.uint8)
    return images, [md["prompt"] for md in metas], metas


def test_remote_scores_equal_in_process_bit_for_bit(server, tmp_path):
    images, prompts, metas = _batch()
    local = get_world("shapes").make_reward()(images, prompts, metas)
    client = RemoteReward(server.url, batch_size=5, cache=tmp_path / "c.sqlite")
    remote = client(images, prompts, metas)
    assert remote.scores.dtype == np.float32 and np.array_equal(remote.scores, local.scores)
    assert remote.info["correct"] == list(local.info["correct"]) and 0 < np.mean(remote.info["correct"]) < 1
    assert client.requests == 3  # 12 images in batches of 5
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["image_size"] == [32, 32] and "shapes" in health["rewards"]


def _post(server, payload=None, content=None):
    return httpx.post(server.url + SCORE_PATH, json=payload, content=content, timeout=10)


def test_request_limits_answer_4xx_with_a_reason(server):
    images, prompts, _ = _batch(2)
    good = {"prompts": prompts, "images": [encode_image(i) for i in images]}
    assert _post(server, good).status_code == 200
    cases = [
        (_post(server, content=b"{not json"), 400, "malformed JSON"),
        (_post(server, {**good, "images": [encode_image(np.zeros((16, 16, 3), np.uint8))] * 2}), 422, "32x32"),
        (_post(server, {**good, "images": ["bm90IGEgcG5n", "!!"]}), 422, "not a base64 PNG"),
        (_post(server, {**good, "reward": "nope"}), 404, "unknown reward 'nope'"),
        (_post(server, {"prompts": prompts * 9, "images": good["images"] * 9}), 413, "too many images: 18 > 16"),
        (_post(server, {**good, "prompts": prompts[:1]}), 422, "one prompt string per image"),
        (_post(server, {**good, "pickle": "x"}), 422, "unknown field 'pickle'"),
        (_post(server, content=b"[" + b"1," * 250_000 + b"1]"), 413, "exceeds the limit"),
    ]
    for resp, status, reason in cases:
        assert resp.status_code == status, resp.text
        assert reason in resp.json()["error"]


def test_token_is_required_when_set():
    from fastapi.testclient import TestClient

    client = TestClient(_app(token="s3cret"), base_url="http://127.0.0.1")
    assert client.get("/health").status_code == 401
    assert client.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health?token=s3cret").status_code == 200


def test_cache_hit_avoids_the_server_across_restarts(tmp_path):
    srv = serve_in_thread(_app(), "127.0.0.1", 0)
    images, prompts, metas = _batch(6)
    try:
        first = RemoteReward(srv.url, cache=tmp_path / "cache.sqlite")(images, prompts, metas)
    finally:
        srv.stop()
    again = RemoteReward(srv.url, cache=tmp_path / "cache.sqlite", retries=0)  # a restarted run; server gone
    out = again(images, prompts, metas)
    assert again.requests == 0 and np.array_equal(out.scores, first.scores) and out.info == first.info
    other = [p + " please" for p in prompts]  # same pixels, other prompt: not a hit
    with pytest.raises(RewardError, match="failed after 1 tries: connection failed"):
        again(images, other, [{"prompt": p} for p in other])


@pytest.mark.parametrize(
    "reward, kw, message",
    [
        ("boom", {}, "answered 500: reward 'boom' raised ValueError: detector crashed"),
        ("nan", {}, "answered 500: reward 'nan' returned a non-finite score for image 0"),
        ("slow", {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.01}, "failed after 2 tries: no answer within 0.2 s"),
    ],
)
def test_server_failures_are_one_line_reward_errors(server, reward, kw, message):
    images, prompts, metas = _batch(2)
    client = RemoteReward(server.url, reward=reward, cache=False, **kw)
    with pytest.raises(RewardError, match=message):
        client(images, prompts, metas)


def test_nan_and_short_answers_from_a_foreign_server_are_refused(tmp_path):
    app = FastAPI()
    answers = iter([b'{"scores": [0.5, NaN]}', b'{"scores": [0.5]}'])

    @app.post(SCORE_PATH)
    async def score(request: Request):
        await request.body()
        return Response(next(answers), media_type="application/json")

    srv = serve_in_thread(app, "127.0.0.1", 0)
    images, prompts, metas = _batch(2)
    try:
        client = RemoteReward(srv.url, cache=tmp_path / "c.sqlite")
        with pytest.raises(RewardError, match="non-finite score nan for image 1"):
            client(images, prompts, metas)
        with pytest.raises(RewardError, match="returned 1 scores for 2 images"):
            client(images, prompts, metas)
        assert client.cache.get([]) == {}  # nothing wrong was cached
    finally:
        srv.stop()


def test_dropped_connection_is_retried_then_reported():
    import socket
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]

    def drop():  # accept, read, hang up without answering: bounded by the client's tries
        for _ in range(3):
            conn, _ = sock.accept()
            conn.recv(1024)
            conn.close()

    t = threading.Thread(target=drop, daemon=True)
    t.start()
    images, prompts, metas = _batch(1)
    client = RemoteReward(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.01, cache=False)
    with pytest.raises(RewardError, match="failed after 3 tries: connection failed"):
        client(images, prompts, metas)
    t.join(5)
    sock.close()
    assert client.requests == 3


def test_server_killed_mid_run_stops_the_trainer_with_checkpoint_intact(tiny_student, tmp_path, monkeypatch):
    from tdmr1.config import load_config
    from tdmr1.r1.config import RLConfig
    from tdmr1.r1.trainer import TDMR1Trainer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    srv = serve_in_thread(_app(), "127.0.0.1", 0)
    args = [f"init={tiny_student}", "lora.rank=2", "prompts_per_iteration=2", "group_size=2", "minibatch_groups=1"]
    args += ["val_every=0", "checkpoint_every=1", "iterations=3", "sur_rank_every=0"]
    args += [f"reward={{{srv.url}: {{retries: 1, backoff_s: 0.01}}}}"]
    trainer = TDMR1Trainer(load_config(RLConfig, None, args), tmp_path / "run", quiet=True)
    assert isinstance(trainer.reward, RemoteReward)
    trainer.iteration()
    trainer.save()
    before = (tmp_path / "run" / "state.pt").read_bytes()
    srv.stop()
    with pytest.raises(RewardError, match=f"reward server {srv.url} failed after 2 tries: connection failed"):
        trainer.run()
    assert (tmp_path / "run" / "state.pt").read_bytes() == before and trainer.step == 1


def test_composite_weights_and_parts(server, monkeypatch, tmp_path):
    monkeypatch.setitem(REWARDS, "quarter", lambda: _Fixed("quarter", value=0.25))
    images, prompts, metas = _batch(6)
    world = get_world("shapes")
    spec = {"shapes": 1.0, server.url: {"weight": 0.5, "cache": False}, "quarter": 2}
    reward = make_reward(spec, world, run_dir=tmp_path)
    assert isinstance(reward, CompositeReward)
    out = reward(images, prompts, metas)
    own = world.make_reward()(images, prompts, metas).scores
    label = server.url.removeprefix("http://").replace(":", "_")
    np.testing.assert_allclose(out.scores, 1.5 * own + 0.5, rtol=0, atol=1e-6)
    assert out.info["reward/shapes"] == own.tolist() and out.info[f"reward/{label}"] == own.tolist()
    assert out.info["reward/quarter"] == [0.25] * 6 and "correct" in out.info
    parts = reward_parts(out.info)
    assert set(parts) == {"reward/shapes", f"reward/{label}", "reward/quarter"}
    assert parts["reward/quarter"] == 0.25 and parts["reward/shapes"] == pytest.approx(float(own.mean()))
    # one part failing fails the whole call: never a partial reward
    bad = make_reward({"shapes": 1.0, server.url: {"reward": "nan", "cache": False}}, world)
    with pytest.raises(RewardError, match="non-finite"):
        bad(images, prompts, metas)


def test_registry_specs_and_errors(tmp_path):
    world = get_world("shapes")
    assert make_reward(None, world).name == "shapes" and make_reward("shapes", world).name == "shapes"
    assert make_reward({"shapes": 1.0}, world).name == "shapes"  # one part, weight 1: the reward itself
    remote = make_reward("http://127.0.0.1:9", world, run_dir=tmp_path)
    assert isinstance(remote, RemoteReward) and remote.cache.path == tmp_path / "reward_cache.sqlite"
    (tmp_path / "my_reward.py").write_text(
        "import numpy as np\nclass Red:\n    name = 'red'\n"
        "    def __call__(self, images, prompts, metadata):\n"
        "        return np.asarray(images[..., 0].mean(axis=(1, 2)) / 255, dtype=np.float32)\n"
    )
    assert make_reward(f"{tmp_path / 'my_reward.py'}:Red", world).name == "red"
    for spec, message in [
        ("nope", "unknown reward 'nope'"),
        ({"http://127.0.0.1:9": {"retry": 2}}, "unknown option 'retry'"),
        ({"shapes": "heavy"}, "weight must be a number"),
        ({"shapes": {"weight": 1, "x": 1}}, "takes no options"),
        ({}, "expected a name"),
        ("missing_file.py:R", "reward file not found"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_reward(spec, world)


def test_rewards_package_imports_no_training():
    """Rewards sit below every trainer (the whole layering is checked by tests/test_layering.py)."""
    code = (
        "import sys; import tdmr1.rewards.registry, tdmr1.rewards.remote, tdmr1.rewards.server, "
        "tdmr1.rewards.composite, tdmr1.rewards.likes; "
        "assert not [m for m in sys.modules if m.startswith(('tdmr1.training', 'tdmr1.tdm', 'tdmr1.r1'))], "
        "sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    subprocess.run([sys.executable, "-c", "import tdmr1.worlds.base, tdmr1.rewards.registry"], check=True, timeout=120)


def test_png_round_trip_is_lossless():
    from tdmr1.rewards.protocol import decode_image

    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    text = encode_image(img)
    assert isinstance(text, str) and text.isascii()  # a JSON string as it is, no escaping
    assert base64.b64decode(text, validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    assert np.array_equal(decode_image(json.loads(json.dumps({"x": text}))["x"]), img)


@pytest.mark.parametrize("flags, size", [([], [32, 32]), (["--any-size"], None)])
def test_serve_reward_cli_fixes_the_world_size_unless_any_size(monkeypatch, tmp_path, flags, size):
    """`tdmr1 serve-reward` refuses a foreign image size with a 4xx, and takes any size with --any-size
    (a reward of any size served; the world's own reward still refuses 64x64 with 422 and a reason)."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from tdmr1.cli.app import app as cli
    from tdmr1.rewards import serving

    (tmp_path / "mean.py").write_text(
        "import numpy as np\n"
        "def Mean():\n"
        "    return lambda images, prompts, metadata: np.asarray(images, np.float32).mean(axis=(1, 2, 3)) / 255\n"
    )
    apps = []
    monkeypatch.setattr(serving, "run_server", lambda app, host, port: apps.append(app))
    args = ["serve-reward", "--world", "shapes", "--port", "0", "--reward", f"{tmp_path / 'mean.py'}:Mean", *flags]
    result = CliRunner().invoke(cli, [*args, "--reward", "shapes"])
    assert result.exit_code == 0, result.output
    client = TestClient(apps[0], base_url="http://127.0.0.1")
    assert client.get("/health").json()["image_size"] == size
    body = {"prompts": ["a photo of a red circle"], "images": [encode_image(np.full((64, 64, 3), 51, np.uint8))]}
    answer = client.post(SCORE_PATH, json=body)
    assert answer.status_code == (200 if size is None else 422), answer.text
    if size is None:
        assert answer.json()["scores"] == [pytest.approx(0.2)]
        refused = client.post(SCORE_PATH, json={**body, "reward": "shapes"})
        assert refused.status_code == 422 and "32x32" in refused.json()["error"], refused.text
