"""`tdmr1 sample` / `eval` / config errors through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "from tdmr1.cli.app import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands():
    out = run_cli("--help").stdout
    for cmd in ("pretrain", "sample", "eval", "score", "world", "config"):
        assert cmd in out


def test_config_error_is_one_line(tmp_path):
    res = run_cli("pretrain", "--set", "lrr=1", "--out", str(tmp_path / "x"))
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: unknown key 'lrr'")
    assert "Traceback" not in res.stderr


def test_sample_plain_text_prompts_is_deterministic(tiny_teacher, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a photo of a red circle\n\ntwo squares\n")
    outs = []
    for name in ("a", "b"):
        res = run_cli(
            "sample",
            "--checkpoint",
            str(tiny_teacher),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / name),
            "--steps",
            "2",
            "--cfg",
            "2",
            "--images-per-prompt",
            "2",
            "--seed",
            "3",
        )
        assert res.returncode == 0, res.stderr
        outs.append(tmp_path / name)
    meta = json.loads((outs[0] / "00001" / "metadata.jsonl").read_text().splitlines()[0])
    assert meta["prompt"] == "two squares"
    for rel in ("00000/samples/0000.png", "00001/samples/0001.png"):
        a, b = (np.array(Image.open(o / rel)) for o in outs)
        assert a.shape == (32, 32, 3) and np.array_equal(a, b)


def test_eval_writes_json(tiny_teacher, tmp_path):
    res = run_cli(
        "eval",
        "--world",
        "shapes",
        "--checkpoint",
        str(tiny_teacher),
        "--steps",
        "1",
        "--cfg",
        "1",
        "--images-per-prompt",
        "1",
        "--limit-prompts",
        "1",
        "--out",
        str(tmp_path / "ev"),
    )
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(result["tags"]) == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    assert result["nfe"] == 1 and result["images"] == 6


def test_missing_checkpoint_is_clear(tmp_path):
    res = run_cli("eval", "--checkpoint", str(tmp_path / "nope"))
    assert res.returncode == 2 and "checkpoint not found" in res.stderr
