"""GlyphsEval's text metric: edit distance and the per-image OCR accuracy of the spec.

``pred`` is normalised (upper-cased, spaces removed); then r = 1 if the target is a substring of it,
else max(0, 1 - levenshtein(pred, target) / len(target)). ``exact`` is normalised pred == target.
"""

from __future__ import annotations


def normalize_prediction(pred: str) -> str:
    """OCR output upper-cased with every whitespace character removed."""
    return "".join(pred.upper().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between ``a`` and ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def text_accuracy(pred: str, target: str) -> float:
    """The spec's per-image score in [0, 1] of OCR text ``pred`` for the (upper-case) ``target``."""
    if not target:
        raise ValueError("target text must not be empty")
    norm = normalize_prediction(pred)
    if target in norm:
        return 1.0
    return max(0.0, 1.0 - levenshtein(norm, target) / len(target))


def exact(pred: str, target: str) -> bool:
    """Whether the normalised prediction equals ``target``."""
    return normalize_prediction(pred) == target
