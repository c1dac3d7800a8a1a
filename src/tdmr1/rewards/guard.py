"""Calling a black-box reward safely: timeout, exceptions, shape and NaN checks -> RewardError."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import numpy as np

from tdmr1.errors import RewardError
from tdmr1.rewards.base import Reward, RewardOutput


def call_reward(
    reward: Reward,
    images: np.ndarray,
    prompts: list[str],
    metadata: list[dict[str, Any]],
    timeout_s: float | None = None,
) -> RewardOutput:
    """Run ``reward`` and validate its output; any failure becomes a one-line RewardError."""
    name = getattr(reward, "name", type(reward).__name__)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward")
    future = pool.submit(reward, images, prompts, metadata)
    try:
        out = future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise RewardError(f"reward {name!r} timed out after {timeout_s} s on a batch of {len(images)}") from None
    except RewardError:
        raise
    except Exception as exc:  # noqa: BLE001 - a black box may raise anything
        raise RewardError(f"reward {name!r} raised {type(exc).__name__}: {exc}") from exc
    finally:
        pool.shutdown(wait=False)  # a hung reward leaves its thread behind, never the caller
    scores = getattr(out, "scores", out)
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (len(images),):
        raise RewardError(f"reward {name!r} returned scores of shape {scores.shape}, expected ({len(images)},)")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise RewardError(
            f"reward {name!r} returned {int(bad.sum())} non-finite scores "
            f"(first at index {int(np.argmax(bad))}: prompt {prompts[int(np.argmax(bad))]!r})"
        )
    info = getattr(out, "info", {}) or {}
    return RewardOutput(scores=scores, info=dict(info))
