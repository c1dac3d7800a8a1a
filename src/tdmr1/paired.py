"""Paired comparison of two image folders judged by the same reward on the same prompts and seeds (e.g.
the student before and after RL): images gained and lost per tag, and the exact McNemar test of whether
the change in accuracy is larger than sampling noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from tdmr1.errors import DataError
from tdmr1.scoring import ScoreReport, score_folder
from tdmr1.worlds import World, get_world


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: binomial(n = gained + lost, 1/2) test on the discordant pairs."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


@dataclass
class PairedComparison:
    """Counts over images present in both folders (matched by prompt folder and file name)."""

    pairs: int
    gained: int  # wrong before, correct after
    lost: int  # correct before, wrong after
    tags: dict[str, dict[str, int]] = field(default_factory=dict)
    unmatched: int = 0

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.gained, self.lost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "gained": self.gained,
            "lost": self.lost,
            "mcnemar_p": self.p_value,
            "tags": self.tags,
            "unmatched": self.unmatched,
        }

    def sentence(self) -> str:
        """One line for reports."""
        return (
            f"Same prompts and seeds ({self.pairs} image pairs): {self.gained} images turned correct, "
            f"{self.lost} turned wrong; exact McNemar p = {self.p_value:.3g}"
            + (" (the change is within sampling noise at the 5% level)." if self.p_value >= 0.05 else ".")
        )


def compare_reports(before: ScoreReport, after: ScoreReport) -> PairedComparison:
    """Pair the per-image rows of two score reports; DataError when no image is in both."""
    before_rows = {(r["folder"], r["file"]): r for r in before.images}
    after_rows = {(r["folder"], r["file"]): r for r in after.images}
    keys = [k for k in before_rows if k in after_rows]
    if not keys:
        raise DataError("the two folders share no image (compare folders of the same prompts and seeds)")
    out = PairedComparison(pairs=len(keys), gained=0, lost=0)
    out.unmatched = len(before_rows) + len(after_rows) - 2 * len(keys)
    for key in keys:
        b, a = before_rows[key]["correct"], after_rows[key]["correct"]
        tag = out.tags.setdefault(before_rows[key]["tag"], {"pairs": 0, "gained": 0, "lost": 0})
        tag["pairs"] += 1
        if a and not b:
            out.gained += 1
            tag["gained"] += 1
        elif b and not a:
            out.lost += 1
            tag["lost"] += 1
    return out


def compare_folders(world: World | str, before: str | Path, after: str | Path) -> PairedComparison:
    """Score both GenEval-layout folders with ``world``'s reward and pair them."""
    world = get_world(world) if isinstance(world, str) else world
    return compare_reports(score_folder(world, before), score_folder(world, after))
