"""Collect the shipped models' measured evaluations (the JSONs beside each checkpoint, written by
`tdmr1 eval --json`) into one JSON per world, with the TDM-R1 acceptance checks of issues 6 and 7
computed from them (met / not met). Nothing is re-measured here.

    python benchmarks/acceptance.py            # -> benchmarks/results/acceptance_{shapes,glyphs}.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints"
OUT = ROOT / "benchmarks" / "results"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _brief(res: dict[str, Any] | None) -> dict[str, Any] | None:
    if res is None:
        return None
    keep = ("overall", "ocr_accuracy", "exact_match", "off_palette_fraction", "gray_fraction", "nfe", "device")
    out = {k: res[k] for k in keep if k in res}
    out["tags"] = {t: v["accuracy"] for t, v in res["tags"].items()}
    if "ocr_accuracy" in res:  # glyphs: OCR accuracy per word length too
        out["tags_ocr_accuracy"] = {t: v["mean_score"] for t, v in res["tags"].items()}
    return out


def shapes() -> dict[str, Any]:
    teacher = _load(CKPT / "shapes/teacher/eval_80nfe.json")
    tdm = _load(CKPT / "shapes/tdm4/eval_4nfe.json")
    r1 = _load(CKPT / "shapes/r1/eval_4nfe.json")
    checks = {}
    if teacher and tdm and r1:
        checks = {
            "r1 overall >= 0.90": r1["overall"] >= 0.90,
            "every tag >= TDM student": all(r1["tags"][t]["accuracy"] >= v["accuracy"] for t, v in tdm["tags"].items()),
            "r1 overall >= teacher@80 + 0.20": r1["overall"] >= teacher["overall"] + 0.20,
            "off-palette share grows <= 1 point": r1["off_palette_fraction"] - tdm["off_palette_fraction"] <= 0.01,
        }
    return {"teacher_80nfe": _brief(teacher), "tdm_4nfe": _brief(tdm), "r1_4nfe": _brief(r1), "checks": checks}


def glyphs() -> dict[str, Any]:
    """GlyphsEval spec v2 (32x128, 4-8 letters), issue 14's bar; every figure also per word length."""
    teacher = _load(CKPT / "glyphs/teacher/eval_80nfe.json")
    teacher4 = _load(CKPT / "glyphs/teacher/eval_4steps_cfg1.0.json")
    tdm = _load(CKPT / "glyphs/tdm4/eval_4nfe.json")
    r1 = _load(CKPT / "glyphs/r1/eval_4nfe.json")
    for res in (teacher, teacher4, tdm, r1):
        if res is not None and "v2" not in res.get("world_spec", ""):
            raise SystemExit("checkpoints/glyphs holds a result without a GlyphsEval v2 world_spec (a v1 model?)")
    checks = {}
    if tdm:
        checks["headroom: TDM student OCR accuracy <= 0.80"] = tdm["ocr_accuracy"] <= 0.80
    if tdm and r1:
        checks |= {
            "r1 OCR accuracy >= TDM student + 0.20": r1["ocr_accuracy"] >= tdm["ocr_accuracy"] + 0.20,
            "r1 exact match > TDM student": r1["exact_match"] > tdm["exact_match"],
            "grey pixels within 1 point of the student": abs(r1["gray_fraction"] - tdm["gray_fraction"]) <= 0.01,
            "goal: r1 OCR accuracy >= 0.95": r1["ocr_accuracy"] >= 0.95,
        }
    return {
        "spec": "GlyphsEval v2",
        "status": "models not trained yet (checkpoints/glyphs/README.md)" if tdm is None else "measured",
        "teacher_80nfe": _brief(teacher),
        "teacher_4nfe_euler_no_cfg": _brief(teacher4),
        "tdm_4nfe": _brief(tdm),
        "r1_4nfe": _brief(r1),
        "checks": checks,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in (("shapes", shapes), ("glyphs", glyphs)):
        result = fn()
        (OUT / f"acceptance_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(name, json.dumps(result["checks"]))


if __name__ == "__main__":
    main()
