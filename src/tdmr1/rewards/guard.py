"""Calling a black-box reward safely: timeout, exceptions, shape and NaN checks -> RewardError."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from tdmr1.errors import RewardError
from tdmr1.reward_protocol import Reward, RewardOutput


def as_scores(raw: Any, n: int, name: str) -> np.ndarray:
    """A reward's scores as float32 [n] (values beyond float32 become inf: callers check finiteness);
    RewardError for strings, None or objects (never parsed: ``"0.5"`` is not a score) and for a wrong shape."""
    try:
        arr = np.asarray(raw)
    except (TypeError, ValueError):  # ragged lists and the like
        raise RewardError(f"reward {name!r} returned scores that are not an array of numbers") from None
    if arr.dtype.kind not in "biuf":
        first = repr(arr.reshape(-1).tolist()[0])[:40] if arr.size else ""
        raise RewardError(f"reward {name!r} returned scores that are not numbers ({arr.dtype.name} {first})".strip())
    if arr.shape != (n,):
        raise RewardError(f"reward {name!r} returned scores of shape {arr.shape}, expected ({n},)")
    with np.errstate(over="ignore"):
        return arr.astype(np.float32)


def call_reward(
    reward: Reward,
    images: np.ndarray,
    prompts: list[str],
    metadata: list[dict[str, Any]],
    timeout_s: float | None = None,
) -> RewardOutput:
    """Run ``reward`` and validate its output; any failure becomes a one-line RewardError."""
    name = getattr(reward, "name", type(reward).__name__)
    # a daemon thread, not a ThreadPoolExecutor: the executor's workers are joined at interpreter exit, so a
    # hung reward would hold the process after the timeout error; a daemon thread is simply abandoned
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["out"] = reward(images, prompts, metadata)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            result["exc"] = exc

    worker = threading.Thread(target=target, name=f"reward-{name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise RewardError(f"reward {name!r} timed out after {timeout_s} s on a batch of {len(images)}")
    if "exc" in result:
        exc = result["exc"]
        if isinstance(exc, RewardError):
            raise exc
        # SystemExit / KeyboardInterrupt raised on the reward's own thread are its failure, not the user's
        # wish to stop: a reward must never end a run as if it had finished
        raise RewardError(f"reward {name!r} raised {type(exc).__name__}: {exc}") from None
    out = result["out"]
    scores = as_scores(getattr(out, "scores", out), len(images), name)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise RewardError(
            f"reward {name!r} returned {int(bad.sum())} non-finite scores "
            f"(first at index {int(np.argmax(bad))}: prompt {prompts[int(np.argmax(bad))]!r})"
        )
    info = getattr(out, "info", {}) or {}
    return RewardOutput(scores=scores, info=dict(info))


class SkipBudget:
    """Consecutive skipped reward batches (``skip_bad_reward_batches``): ``skip(exc)`` counts a failed batch
    and re-raises it as a RewardError once more than ``limit`` batches in a row failed; ``ok()`` resets."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    def skip(self, exc: Exception) -> None:
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row > self.limit:
            raise RewardError(
                f"{self.in_a_row} reward batches failed in a row (max_skipped_batches = {self.limit}); last: {exc}"
            ) from exc

    def ok(self) -> None:
        self.in_a_row = 0
