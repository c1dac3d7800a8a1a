"""ShapesEval's scoring rules: GenEval's, from the one shared implementation ``tdmr1.geneval.rules``.

The checker orders objects of a class by area (largest first, ``group_by_class``); detector-based
rewards on real images use the same ``evaluate`` with objects ordered by confidence. Names are
re-exported here so ``tdmr1.worlds.shapes.rules`` keeps working.
"""

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
