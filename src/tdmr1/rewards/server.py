"""Serve rewards over HTTP (``tdmr1 serve-reward``, the protocol of ``rewards.protocol``) with bounded memory,
timeouts and no cross-site use; ``serve_in_thread`` runs any ASGI app (limits and answers: docs/DESIGN_NOTES.md)."""

import asyncio
import hmac
import ipaddress
import math
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdmr1.errors import DataError, RewardError
from tdmr1.reward_protocol import Reward
from tdmr1.rewards.guard import as_scores
from tdmr1.rewards.protocol import HEALTH_PATH, PROTOCOL_VERSION, SCORE_PATH, decode_image, jsonable, png_size
from tdmr1.rewards.web_guard import install_guard, parse_json

TOKEN_ENV = "TDMR1_REWARD_TOKEN"


@dataclass(frozen=True)
class Limits:
    """Request limits of a reward server."""

    max_images: int = 256
    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 32 * 1024 * 1024  # all images of a request together (uint8 RGB: 96 MiB)
    read_timeout_s: float = 30.0
    reward_timeout_s: float = 300.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token to require: the given one; a fresh random one when ``host`` is not loopback; else None."""
    if token:
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(18)


def token_ok(expected: str | None, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """``Authorization: Bearer <t>``, ``X-Token: <t>`` or ``?token=<t>`` must match when a token is set."""
    if not expected:
        return True
    auth = headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-token") or query.get("token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


class _Reject(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _parse_request(body: bytes, rewards: Mapping[str, Reward], default: str, image_size, limits: Limits):
    try:
        data = parse_json(body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too deeply nested
        raise _Reject(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Reject(422, "the request must be a JSON object with prompts and images")
    unknown = sorted(set(data) - {"reward", "prompts", "images", "metadata"})
    if unknown:
        raise _Reject(422, f"unknown field {unknown[0]!r} (known: reward, prompts, images, metadata)")
    name = data.get("reward") or default
    if not isinstance(name, str) or name not in rewards:
        raise _Reject(404, f"unknown reward {name!r} (served: {', '.join(sorted(rewards))})")
    prompts, images = data.get("prompts"), data.get("images")
    if not isinstance(images, list) or not isinstance(prompts, list):
        raise _Reject(422, "prompts and images must be lists")
    if len(images) > limits.max_images:
        raise _Reject(413, f"too many images: {len(images)} > {limits.max_images} per request")
    if len(prompts) != len(images) or not all(isinstance(p, str) for p in prompts):
        raise _Reject(422, f"need one prompt string per image: {len(prompts)} prompts for {len(images)} images")
    metadata = data.get("metadata")
    if metadata is None:
        metadata = [{"prompt": p} for p in prompts]
    if not isinstance(metadata, list) or len(metadata) != len(images) or not all(isinstance(m, dict) for m in metadata):
        raise _Reject(422, f"metadata must be a list of {len(images)} objects")
    try:
        sizes = [png_size(text, i) for i, text in enumerate(images)]  # headers only: nothing decoded yet
    except DataError as exc:
        raise _Reject(422, str(exc)) from None
    for i, size in enumerate(sizes):
        if image_size is not None and size != tuple(image_size):
            h, w = image_size
            raise _Reject(422, f"image {i} is {size[0]}x{size[1]}; this server's world takes {h}x{w}")
    pixels = sum(h * w for h, w in sizes)
    if pixels > limits.max_pixels:
        raise _Reject(413, f"images of {pixels} pixels in all exceed the limit of {limits.max_pixels} per request")
    try:
        arrays = [
            decode_image(text, i, max_pixels=h * w) for i, (text, (h, w)) in enumerate(zip(images, sizes, strict=True))
        ]
    except DataError as exc:
        raise _Reject(422, str(exc)) from None
    if arrays and len({a.shape for a in arrays}) > 1:
        raise _Reject(422, "all images of a request must have the same size")
    batch = np.stack(arrays) if arrays else np.zeros((0, *(image_size or (1, 1)), 3), dtype=np.uint8)
    return name, batch, prompts, metadata


def create_reward_app(
    rewards: Mapping[str, Reward],
    default: str | None = None,
    image_size: tuple[int, int] | None = None,
    limits: Limits | None = None,
    token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
):
    """FastAPI app serving ``rewards`` (name -> reward) on ``/v1/score`` and ``/health``; ``allowed_hosts``:
    host names it answers to besides IP literals, localhost and this machine's names."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    if not rewards:
        raise ValueError("no rewards to serve")
    limits = limits or Limits()
    default = default or next(iter(rewards))
    lock = threading.Lock()  # rewards need not be thread-safe: one batch at a time
    stuck = threading.Event()  # a reward call that timed out still holds the lock
    app = FastAPI(title="tdmr1 reward server", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status)

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if not token_ok(token, request.headers, request.query_params):
            return error(401, "missing or wrong access token")
        return await call_next(request)

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "protocol": PROTOCOL_VERSION,
            "rewards": sorted(rewards),
            "default": default,
            "image_size": list(image_size) if image_size else None,
            "limits": {"max_images": limits.max_images, "max_body_bytes": limits.max_body_bytes},
        }

    @app.post(SCORE_PATH)
    async def score(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return error(413, f"body of {declared} bytes exceeds the limit of {limits.max_body_bytes}")

        async def read_body() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _Reject(413, f"body exceeds the limit of {limits.max_body_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            body = await asyncio.wait_for(read_body(), limits.read_timeout_s)
            name, images, prompts, metadata = _parse_request(body, rewards, default, image_size, limits)
        except _Reject as rej:
            return error(rej.status, rej.reason)
        except TimeoutError:
            return error(408, f"the request body did not arrive within {limits.read_timeout_s:g} s")
        if stuck.is_set():
            return error(503, f"reward {name!r} is still stuck on an earlier request that timed out")

        def run():
            if not lock.acquire(timeout=limits.reward_timeout_s):
                raise TimeoutError
            try:
                return rewards[name](images, prompts, metadata)
            finally:
                lock.release()
                stuck.clear()

        try:
            out = await _in_daemon_thread(run, limits.reward_timeout_s, stuck)
        except TimeoutError:
            return error(504, f"reward {name!r} did not answer within {limits.reward_timeout_s:g} s")
        except DataError as exc:  # the reward refused these images (size, channels, ...): the client's to fix
            return error(422, f"reward {name!r} refused the request: {exc}")
        except Exception as exc:  # noqa: BLE001 - the reward is a black box
            return error(500, f"reward {name!r} raised {type(exc).__name__}: {exc}")
        try:  # float32, what the client keeps (1e39 is inf there); float32 -> JSON is exact
            scores = as_scores(getattr(out, "scores", out), len(images), name)
        except RewardError as exc:
            return error(500, str(exc))
        bad = [i for i, s in enumerate(scores.tolist()) if not math.isfinite(s)]
        if bad:
            return error(500, f"reward {name!r} returned a non-finite score for image {bad[0]}")
        info = {
            str(k): jsonable(v)
            for k, v in (getattr(out, "info", {}) or {}).items()
            if isinstance(v, list | tuple | np.ndarray) and len(v) == len(images)
        }
        # float32 -> float64 is exact and json writes the shortest repr that round-trips: bit for bit
        return {"reward": name, "scores": scores.tolist(), "info": info}

    install_guard(app, allowed_hosts)
    return app


async def _in_daemon_thread(fn, timeout_s: float, stuck: threading.Event):
    """``fn()`` on a daemon thread, awaited at most ``timeout_s`` (then ``stuck`` is set until it returns;
    the thread is abandoned, never waited for: a hung reward neither blocks the server nor its shutdown).
    A reward raising SystemExit / KeyboardInterrupt is reported as an error, not obeyed."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if not future.done():
            future.set_exception(exc) if exc is not None else future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the request
            error = exc
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt from a black box
            error = RuntimeError(f"{type(exc).__name__}({exc})")
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the server has shut down meanwhile
            pass

    threading.Thread(target=target, daemon=True, name="reward").start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        stuck.set()
        raise


class ServerThread:
    """A uvicorn server on a background thread, bound to a socket opened before it starts."""

    def __init__(
        self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", read_timeout_s: float = 30.0
    ):
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        from tdmr1.rewards.serving import server_config

        self.server = uvicorn.Server(server_config(app, host, self.port, read_timeout_s, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        from tdmr1.rewards.serving import display_url

        return display_url(self.host, self.port)

    def start(self, timeout_s: float = 10.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        self.sock.close()


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> ServerThread:
    """Start ``app`` on ``host:port`` (0 = a free port) in a daemon thread; returns the running server."""
    return ServerThread(app, host, port).start()
