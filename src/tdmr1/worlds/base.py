"""The ``World`` record: what every embedded world (shapes, glyphs, ...) offers to the rest of tdmr1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import CheckpointError
from tdmr1.reward_protocol import Reward


def first_per_tag(suite: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Deterministic slice of a suite: the first ``n`` prompts of every tag, suite order kept."""
    seen: dict[str, int] = {}
    out = []
    for md in suite:
        tag = md.get("tag", "untagged")
        if seen.get(tag, 0) < n:
            seen[tag] = seen.get(tag, 0) + 1
            out.append(md)
    return out


@dataclass(frozen=True)
class Metric:
    """A world's named headline number, copied from the generic score summary (``ScoreReport.summary()``).

    Attributes:
        key: result key it is reported under (``ocr_accuracy``).
        source: the summary key it copies: ``overall`` (mean over tags of the exact-correct rate) or
            ``mean_score`` (mean reward).
        label: how tables print it (``OCR accuracy``).
    """

    key: str
    source: str
    label: str


@dataclass(frozen=True)
class World:
    """A self-contained benchmark world.

    Attributes:
        name: registry name (``shapes``).
        image_size: (height, width) of every image.
        tags: the benchmark's categories, in report order.
        images_per_prompt: images per benchmark prompt.
        tokenizer_mode: ``word`` or ``char`` (how the embedded text encoder splits prompts).
        make_reward: builds the world's black-box reward (implements ``tdmr1.reward_protocol.Reward``).
        benchmark_suite: ``() -> list of metadata dicts`` (the fixed benchmark prompts).
        training_prompts: ``(seed=..., n=...) -> list of metadata dicts`` for RL.
        training_batch: ``(rng, n) -> (uint8 [n, H, W, 3], captions)``: the teacher's training data.
        render_oracle: ``(metadata, rng) -> uint8 [H, W, 3]``: an image that satisfies the prompt.
        read_prompts: ``(path) -> list of metadata dicts``: the world's prompt-file reader.
        resolve_metadata: ``(metadata) -> metadata``: validate one prompt's metadata for this world
            (complete it from the prompt text where possible); DataError when it is unusable.
        vocabulary: ``() -> list of words`` every caption and prompt is made of.
        grid_prompts: ``() -> list of prompt strings`` for preview sample grids.
        subsample_suite: ``(suite, n) -> suite``: deterministic slice of ``n`` prompts per tag.
        quality: optional ``(uint8 images) -> {metric: value}`` image-quality proxies for reports.
        metrics: the world's own names for its summary numbers, main number first (glyphs: OCR
            accuracy = mean score, exact match = overall). Empty: ``overall`` accuracy is the headline.
        rl_defaults: ``key=value`` RL config overrides that suit this world's reward (the authors'
            column for the task, e.g. OCR), applied by ``tdmr1 demo`` before the user's own.
        demo_defaults: ``key=value`` RL overrides of the CPU demo's recipe for this world (after
            ``rl_defaults``), e.g. the tags whose reward its surrogate learns within the demo's minutes.
        spec: one line naming the world's contract and level (``GlyphsEval v2 standard (16 px, ...)``),
            written into results beside the numbers; empty when the name says it all.
        model_hint: how to make a model for this world, appended to model/world mismatch errors.
        demo_world: the world whose shipped models ``tdmr1 demo`` runs when this one has none (glyphs:
            ``glyphs-compact``, the level a CPU trains); empty: none.
    """

    name: str
    image_size: tuple[int, int]
    tags: tuple[str, ...]
    images_per_prompt: int
    tokenizer_mode: str
    make_reward: Callable[[], Reward]
    benchmark_suite: Callable[[], list[dict[str, Any]]]
    training_prompts: Callable[..., list[dict[str, Any]]]
    training_batch: Callable[[np.random.Generator, int], tuple[np.ndarray, list[str]]]
    render_oracle: Callable[[dict[str, Any], np.random.Generator], np.ndarray]
    read_prompts: Callable[[str | Path], list[dict[str, Any]]]
    resolve_metadata: Callable[[dict[str, Any]], dict[str, Any]]
    vocabulary: Callable[[], list[str]]
    grid_prompts: Callable[[], list[str]]
    subsample_suite: Callable[[list[dict[str, Any]], int], list[dict[str, Any]]] = first_per_tag
    quality: Callable[[np.ndarray], dict[str, float]] | None = None
    metrics: tuple[Metric, ...] = ()
    rl_defaults: tuple[str, ...] = ()
    demo_defaults: tuple[str, ...] = ()
    spec: str = ""
    model_hint: str = ""
    demo_world: str = ""

    @property
    def headline(self) -> tuple[str, str]:
        """(result key, label) of the world's main number: its first metric, else ``overall`` accuracy."""
        return (self.metrics[0].key, self.metrics[0].label) if self.metrics else ("overall", "overall accuracy")

    def quality_keys(self) -> list[str]:
        """Names of the quality proxies this world reports (empty without a quality function)."""
        if self.quality is None:
            return []
        return list(self.quality(np.zeros((1, *self.image_size, 3), dtype=np.uint8)))

    def check_image_size(self, size: tuple[int, int], source: str = "the model") -> None:
        """CheckpointError (one line, with ``model_hint``) unless ``size`` = (height, width) is this world's."""
        if tuple(size) != tuple(self.image_size):
            (h, w), (wh, ww) = size, self.image_size
            hint = f"; {self.model_hint}" if self.model_hint else ""
            raise CheckpointError(
                f"image shape mismatch: {source} makes {h}x{w} images but world {self.name!r} needs {wh}x{ww} "
                f"(height x width){hint}"
            )
