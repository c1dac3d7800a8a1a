"""Paired comparison of two image folders judged by the same reward on the same prompts and seeds (e.g.
the student before and after RL): images gained and lost per tag, and the exact McNemar test of whether
the change in accuracy is larger than sampling noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from tdmr1.errors import DataError
from tdmr1.eval.scoring import ScoreReport, score_folder
from tdmr1.geneval.layout import scan_layout
from tdmr1.manifest import expected_images, read_manifest
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
    seeds_checked: bool = True  # both folders carry a manifest.json whose seeds matched pair by pair

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
            "seeds_checked": self.seeds_checked,
        }

    def sentence(self) -> str:
        """One line for reports."""
        same = "Same prompts and seeds" if self.seeds_checked else "Same prompts (seeds not recorded)"
        return (
            f"{same} ({self.pairs} image pairs): {self.gained} images turned correct, "
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


def _layout_pairs(root: Path) -> dict[tuple[str, str], str]:
    """(prompt folder, image file) -> prompt, for every image of a GenEval layout."""
    entries, _ = scan_layout(root)
    return {(e.folder.name, p.name): str(e.metadata.get("prompt")) for e in entries for p in e.images}


def check_same_prompts_and_seeds(before: str | Path, after: str | Path) -> bool:
    """DataError unless both folders hold the same images of the same prompts, pair by pair, and (when
    both have a ``manifest.json``) the same seeds; returns whether the seeds could be checked."""
    before, after = Path(before), Path(after)
    a, b = _layout_pairs(before), _layout_pairs(after)
    only_before, only_after = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_before or only_after:
        side, key = (before, only_before[0]) if only_before else (after, only_after[0])
        raise DataError(
            f"the folders hold different images ({len(a)} in {before}, {len(b)} in {after}; "
            f"{'/'.join(key)} is only in {side}): compare folders sampled from the same prompts and seeds"
        )
    for key in sorted(a):
        if a[key] != b[key]:
            raise DataError(
                f"prompt folder {key[0]} holds different prompts: {a[key]!r} in {before}, {b[key]!r} in {after}"
            )
    ma, mb = read_manifest(before), read_manifest(after)
    if ma is None or mb is None:
        return False
    ea, eb = expected_images(ma), expected_images(mb)
    for key in sorted(a):
        if key in ea and key in eb and ea[key][1] != eb[key][1]:
            raise DataError(
                f"{'/'.join(key)} was sampled with seed {ea[key][1]} in {before} but {eb[key][1]} in {after}: "
                "a paired comparison needs the same seeds"
            )
        if (key in ea) != (key in eb):
            raise DataError(f"{'/'.join(key)} is described by only one of the two manifests")
    return True


def compare_folders(world: World | str, before: str | Path, after: str | Path) -> PairedComparison:
    """Check that both GenEval-layout folders hold the same prompts and seeds pair by pair (DataError
    otherwise), score them with ``world``'s reward and pair them."""
    world = get_world(world) if isinstance(world, str) else world
    seeds_checked = check_same_prompts_and_seeds(before, after)
    result = compare_reports(score_folder(world, before), score_folder(world, after))
    result.seeds_checked = seeds_checked
    return result
