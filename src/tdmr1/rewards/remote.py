"""A reward served by another process or machine (``reward: http://host:port``): batched requests with timeouts
and bounded retries, never a partial reward, and an on-disk score cache (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import RewardError
from tdmr1.reward_protocol import RewardOutput, validate_images
from tdmr1.rewards.http_json import JsonPoster
from tdmr1.rewards.protocol import SCORE_PATH, encode_image, image_hash, metadata_key
from tdmr1.rewards.server import TOKEN_ENV


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/tdmr1/reward_cache.sqlite`` (``~/.cache`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tdmr1" / "reward_cache.sqlite"


def _finite32(value: Any) -> bool:
    """A number that stays finite as float32 (what the trainer computes with)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(value)))


class ScoreCache:
    """Scores (and per-image info) on disk, one SQLite row per (reward id, image, prompt + metadata)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL, info TEXT, time REAL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(reward_id: str, image: np.ndarray, prompt: str, metadata: dict[str, Any]) -> str:
        text = f"{reward_id}\n{image_hash(image)}\n{metadata_key(prompt, metadata)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, tuple[float, dict[str, Any]]]:
        found: dict[str, tuple[float, dict[str, Any]]] = {}
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                rows = db.execute(
                    f"SELECT key, score, info FROM scores WHERE key IN ({','.join('?' * len(part))})", part
                )
                # a non-finite row (an older version cached an answer it should have refused) is a miss
                found.update({k: (float(s), json.loads(i)) for k, s, i in rows if _finite32(s)})
        return found

    def put(self, items: list[tuple[str, float, dict[str, Any]]]) -> None:
        if not all(_finite32(s) for _, s, _ in items):
            raise RewardError("refusing to cache a non-finite score")  # never reached: answers are checked first
        now = time.time()
        with self._lock, self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                [(k, float(s), json.dumps(i), now) for k, s, i in items],
            )


class RemoteReward:
    """Client of a ``tdmr1 serve-reward`` server (or anything that speaks ``rewards.protocol``).

    Args:
        url: ``http://host:port``.
        reward: reward name on the server (None: the server's default).
        timeout_s: per-request timeout.
        retries: retries of a request after a transient failure (so ``retries + 1`` tries at most).
        backoff_s: wait before the first retry; doubles after each.
        batch_size: images per request.
        cache: a SQLite path, True (``cache_path`` or the user cache) or False (no cache).
        token: access token (default: ``$TDMR1_REWARD_TOKEN``).
        cache_path: where ``cache=True`` keeps scores (e.g. the run folder).
    """

    def __init__(
        self,
        url: str,
        reward: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        batch_size: int = 64,
        cache: bool | str | Path = True,
        token: str | None = None,
        cache_path: str | Path | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise RewardError(f"remote reward url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.reward = reward
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self.batch_size = max(1, int(batch_size))
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.name = f"{self.url}" + (f"#{reward}" if reward else "")
        if cache is True:
            cache = cache_path or default_cache_path()
        self.cache = ScoreCache(cache) if cache else None
        self._http = JsonPoster(self.url, "reward server", self.timeout_s, self.retries, self.backoff_s, self.token)

    # ---- HTTP ----------------------------------------------------------------------------------
    @property
    def requests(self) -> int:
        """HTTP requests sent so far (a cache hit sends none)."""
        return self._http.requests

    def _post(self, payload: dict[str, Any]) -> Any:
        return self._http.post(SCORE_PATH, payload)

    def _score_remote(self, images: np.ndarray, prompts: list[str], metadata: list[dict[str, Any]]):
        payload: dict[str, Any] = {
            "prompts": list(prompts),
            "images": [encode_image(img) for img in images],
            "metadata": [dict(md) for md in metadata],
        }
        if self.reward:
            payload["reward"] = self.reward
        answer = self._post(payload)
        scores = answer.get("scores") if isinstance(answer, dict) else None
        n = len(images)
        if not isinstance(scores, list) or len(scores) != n:
            got = len(scores) if isinstance(scores, list) else type(scores).__name__
            raise RewardError(f"reward server {self.url} returned {got} scores for {n} images")
        for i, s in enumerate(scores):
            where = f"for image {i} (prompt {prompts[i]!r})"
            if isinstance(s, bool) or not isinstance(s, int | float):
                shown = repr(s)[:40]
                raise RewardError(f"reward server {self.url} returned a score that is not a number ({shown}) {where}")
            if not math.isfinite(s) or not _finite32(s):
                kind = "non-finite" if not math.isfinite(s) else "out-of-range (not finite as float32)"
                raise RewardError(f"reward server {self.url} returned a {kind} score {s!r} {where}")
        info_in = answer.get("info") or {}
        if not isinstance(info_in, dict):
            info_in = {}
        info = {k: v for k, v in info_in.items() if isinstance(v, list) and len(v) == n}
        per_image = [{k: v[i] for k, v in info.items()} for i in range(n)]
        return np.asarray(scores, dtype=np.float32), per_image

    # ---- the reward ----------------------------------------------------------------------------
    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict[str, Any]]) -> RewardOutput:
        validate_images(images)
        n = len(images)
        if len(prompts) != n or len(metadata) != n:
            raise RewardError(f"got {n} images, {len(prompts)} prompts and {len(metadata)} metadata dicts")
        scores = np.zeros(n, dtype=np.float32)
        per_image: list[dict[str, Any]] = [{} for _ in range(n)]
        todo = list(range(n))
        keys: list[str] = []
        if self.cache is not None:
            rid = f"{self.url}#{self.reward or ''}"
            keys = [ScoreCache.key(rid, images[i], prompts[i], metadata[i]) for i in range(n)]
            hits = self.cache.get(keys)
            for i in range(n):
                if keys[i] in hits:
                    scores[i], per_image[i] = hits[keys[i]]
            todo = [i for i in range(n) if keys[i] not in hits]
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            s, inf = self._score_remote(images[idx], [prompts[i] for i in idx], [metadata[i] for i in idx])
            for j, i in enumerate(idx):
                scores[i], per_image[i] = s[j], inf[j]
            if self.cache is not None:  # each answered batch is kept, even if a later one fails
                self.cache.put([(keys[i], float(s[j]), inf[j]) for j, i in enumerate(idx)])
        names = sorted({k for d in per_image for k in d})
        info = {k: [d.get(k) for d in per_image] for k in names}
        return RewardOutput(scores=scores, info=info)
