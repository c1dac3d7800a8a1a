"""ShapesEval's scoring rules: GenEval's, from the one shared implementation ``tdmr1.geneval.rules`` (objects of a
class ordered by area, largest first), re-exported here."""

from tdmr1.geneval.rules import (
    GENEVAL_COLORS,
    POSITION_THRESHOLD,
    Detection,
    Evaluation,
    evaluate,
    group_by_class,
    relative_position,
)

__all__ = [
    "GENEVAL_COLORS",
    "POSITION_THRESHOLD",
    "Detection",
    "Evaluation",
    "evaluate",
    "group_by_class",
    "relative_position",
]
