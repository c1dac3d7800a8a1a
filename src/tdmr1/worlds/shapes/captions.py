"""Web-like alt-text captions for the teacher's training data (loose on purpose, the spec's probabilities), e.g.
``some red circles and a square`` (the decisions in the order they are drawn: docs/DESIGN_NOTES.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdmr1.errors import ConfigError
from tdmr1.worlds.shapes.palette import CANVAS, NUMBER_WORDS, PLURALS, RELATIONS
from tdmr1.worlds.shapes.render import Obj, draw, render_scene
from tdmr1.worlds.shapes.rules import relative_position
from tdmr1.worlds.shapes.sampling import sample_scene


@dataclass(frozen=True)
class CaptionConfig:
    """Fixed caption-model probabilities (spec; part of the world's config, never tuned on RL results)."""

    omit_class_p: float = 0.1  # each class present is left out of the caption (never all classes)
    exact_count_p: float = 0.4  # a group's count is an exact number word, else "a {cls}" / "some {plural}"
    color_p: float = 0.5  # a group's colour is named when all its objects share one colour
    relation_p: float = 0.2  # one true spatial relation between two single objects is stated

    def __post_init__(self) -> None:
        for name in ("omit_class_p", "exact_count_p", "color_p", "relation_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"CaptionConfig.{name} must be in [0, 1], got {value}")
        if self.omit_class_p >= 1.0:
            raise ConfigError("CaptionConfig.omit_class_p must be < 1 (a caption names at least one class)")


@dataclass(frozen=True)
class GroupPlan:
    """One named class group: class, object count, shared colour (None if mixed), what is stated."""

    cls: str
    count: int
    color: str | None
    exact: bool
    show_color: bool

    def phrase(self) -> str:
        word = NUMBER_WORDS[self.count] if self.exact else ("a" if self.count == 1 else "some")
        noun = self.cls if self.count == 1 else PLURALS[self.cls]
        return f"{word} {self.color} {noun}" if self.show_color else f"{word} {noun}"


@dataclass(frozen=True)
class CaptionPlan:
    """All decisions behind one caption (kept for tests and inspection)."""

    groups: list[GroupPlan]
    omitted: list[str]
    relation_eligible: bool
    relation: tuple[int, str, int] | None = None  # (index of A in groups, relation, index of B)

    def text(self) -> str:
        phrases = [g.phrase() for g in self.groups]
        if self.relation is None:
            return " and ".join(phrases)
        a, rel, b = self.relation
        parts = []
        for k, p in enumerate(phrases):
            if k == min(a, b):
                parts.append(f"{phrases[a]} {rel} {phrases[b]}")
            elif k != max(a, b):
                parts.append(p)
        return " and ".join(parts)


def plan_caption(scene: list[Obj], rng: np.random.Generator, cfg: CaptionConfig | None = None) -> CaptionPlan:
    """Draw every caption decision for ``scene`` (see the module docstring for the exact order)."""
    cfg = cfg or CaptionConfig()
    if not scene:
        raise ConfigError("cannot caption an empty scene")
    present = list(dict.fromkeys(o.cls for o in scene))
    order = [present[i] for i in rng.permutation(len(present))]
    while True:
        omit = rng.random(len(order)) < cfg.omit_class_p
        if not omit.all():
            break
    groups: list[GroupPlan] = []
    for cls, dropped in zip(order, omit, strict=True):
        if dropped:
            continue
        objs = [o for o in scene if o.cls == cls]
        colors = {o.color for o in objs}
        color = objs[0].color if len(colors) == 1 else None
        exact = bool(rng.random() < cfg.exact_count_p)
        show_color = color is not None and bool(rng.random() < cfg.color_p)
        groups.append(GroupPlan(cls, len(objs), color, exact, show_color))
    singles = {g.cls: k for k, g in enumerate(groups) if g.count == 1}
    obj_of = {o.cls: o for o in scene if o.cls in singles}
    pairs = []
    for a_cls, a in singles.items():
        for b_cls, b in singles.items():
            if a != b:
                rels = relative_position(obj_of[a_cls].bbox, obj_of[b_cls].bbox)
                if rels:
                    pairs.append((a, b, [r for r in RELATIONS if r in rels]))
    relation = None
    if pairs and rng.random() < cfg.relation_p:
        a, b, rels = pairs[int(rng.integers(len(pairs)))]
        relation = (a, rels[int(rng.integers(len(rels)))], b)
    return CaptionPlan(groups, [c for c, d in zip(order, omit, strict=True) if d], bool(pairs), relation)


def sample_caption(scene: list[Obj], rng: np.random.Generator, cfg: CaptionConfig | None = None) -> str:
    """One web-like caption of ``scene``."""
    return plan_caption(scene, rng, cfg).text()


def sample_training_example(rng: np.random.Generator, cfg: CaptionConfig | None = None) -> tuple[np.ndarray, str]:
    """A random scene (1-4 objects, everything uniform) rendered, with its caption."""
    scene = sample_scene(rng)
    return render_scene(scene), sample_caption(scene, rng, cfg)


def sample_training_batch(
    rng: np.random.Generator, n: int, cfg: CaptionConfig | None = None
) -> tuple[np.ndarray, list[str]]:
    """``n`` training examples: uint8 images [n, 32, 32, 3] and their captions."""
    images = np.zeros((n, CANVAS, CANVAS, 3), dtype=np.uint8)
    captions: list[str] = []
    for k in range(n):
        scene = sample_scene(rng)
        for obj in scene:
            draw(images[k], obj)
        captions.append(sample_caption(scene, rng, cfg))
    return images, captions
