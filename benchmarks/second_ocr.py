"""GlyphsEval results under a second OCR engine the RL never saw: every evaluation folder (GenEval layout,
e.g. the student's and TDM-R1's `tdmr1 eval` images) and the benchmark's clean renders, scored by the
project's reward (rapidocr) and by Tesseract, overall and per word length, with paired McNemar tests of
each folder against the first. Writes JSON (with the command).

    python benchmarks/second_ocr.py --world glyphs-compact --folder tdm4=e/tdm4/images --folder r1=e/r1/images \
        --out benchmarks/results/glyphs_compact_second_ocr.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.eval.paired import compare_reports
from tdmr1.eval.scoring import ScoreReport, score_folder
from tdmr1.worlds import World, get_world
from tdmr1.worlds.glyphs.tesseract import TesseractReward


def engines(world: World) -> dict[str, World]:
    """The world as it is (rapidocr, the RL's reward) and with Tesseract as its reward."""
    return {"rapidocr": world, "tesseract": dataclasses.replace(world, make_reward=TesseractReward)}


def summary(report: ScoreReport) -> dict[str, Any]:
    """OCR accuracy (mean score) and exact match, overall and per length."""
    return {
        "ocr_accuracy": report.mean_score,
        "exact_match": report.overall,
        "images": len(report.images),
        "per_length": {
            tag: {"ocr_accuracy": v["mean_score"], "exact_match": v["accuracy"]} for tag, v in report.tags.items()
        },
    }


def clean_renders(world: World) -> dict[str, Any]:
    """Both engines on the benchmark's clean renders (their ceiling)."""
    suite = world.benchmark_suite()
    images = np.stack([world.render_oracle(md, None) for md in suite])
    prompts = [md["prompt"] for md in suite]
    out = {}
    for name, w in engines(world).items():
        result = w.make_reward()(images, prompts, suite)
        out[name] = {"ocr_accuracy": float(result.scores.mean()), "exact_match": float(np.mean(result.info["correct"]))}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="glyphs-compact")
    parser.add_argument("--folder", action="append", required=True, help="name=path of a GenEval-layout folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/glyphs_compact_second_ocr.json"))
    args = parser.parse_args(argv)
    world = get_world(args.world)
    folders = dict(item.split("=", 1) for item in args.folder)
    results: dict[str, Any] = {
        "command": "python benchmarks/second_ocr.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "world": world.name,
        "world_spec": world.spec,
        "clean_renders": clean_renders(world),
        "folders": {},
        "paired": {},
    }
    first = next(iter(folders))
    for engine, w in engines(world).items():
        reports = {name: score_folder(w, path) for name, path in folders.items()}
        for name, report in reports.items():
            results["folders"].setdefault(name, {"path": folders[name]})[engine] = summary(report)
        for name in list(folders)[1:]:
            paired = compare_reports(reports[first], reports[name]).to_dict()
            results["paired"].setdefault(f"{first}->{name}", {})[engine] = paired
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name, res in results["folders"].items():
        cells = "  ".join(f"{e}: {res[e]['ocr_accuracy']:.3f} / {res[e]['exact_match']:.3f}" for e in engines(world))
        print(f"{name:>10}  {cells}   (OCR accuracy / exact match)")
    for key, res in results["paired"].items():
        print(key, {e: f"+{v['gained']} -{v['lost']} p={v['mcnemar_p']:.3g}" for e, v in res.items()})
    return results


if __name__ == "__main__":
    main()
