"""Every row of docs/failure_modes.md through the real CLI entry point (``tdmr1.cli.app.main``): user errors
are ONE line on stderr with exit code 2 and no traceback; results folders never mix runs; ``score`` and
``compare`` check what they read; a hung reward does not hold the process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_line_error, cli
from tdmr1.errors import RewardError
from tdmr1.rewards.guard import SkipBudget


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bogus"], "No such command 'bogus'"),
        (["eval"], "eval needs --checkpoint DIR"),
        (["eval", "--checkpoint", "x", "--images-per-prompt", "0"], "--images-per-prompt"),
        (["sample", "--checkpoint", "x", "--prompts", "p", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["eval", "--checkpoint", "x", "--steps", "abc"], "--steps"),
        (["pretrain", "--set", "checkpoint_every=0"], "checkpoint_every must be >= 1"),
        (["pretrain", "--set", "lr=-1"], "lr must be > 0"),
        (["distill", "--set", "iterations=-5", "--teacher", "."], "iterations must be >= 1"),
        (["pretrain", "--set", "threads=-2"], "threads must be >= 0"),
        (["world", "render", "--prompts", "p", "--out", "o", "--seed", "-1"], "--seed"),
    ],
)
def test_usage_and_range_errors_are_one_line(capsys, monkeypatch, args, needle):
    code, _, err = cli(capsys, monkeypatch, *args)
    assert_one_line_error(code, err, needle)


def test_markup_is_not_swallowed_and_long_messages_do_not_wrap(capsys, monkeypatch):
    code, _, err = cli(capsys, monkeypatch, "world", "prompts", "--world", "x[ocr]", "--out", "p.jsonl")
    assert_one_line_error(code, err, "x[ocr]")


def test_binary_config_file_is_a_clean_error(capsys, monkeypatch, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(bytes(range(256)) * 4)
    code, _, err = cli(capsys, monkeypatch, "config", "check", "pretrain", str(cfg))
    assert_one_line_error(code, err, "not a text")


def test_output_paths_are_checked_before_the_work(capsys, monkeypatch, tmp_path):
    occupied = tmp_path / "file"
    occupied.write_text("x")
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--out", str(occupied / "run"))
    assert_one_line_error(code, err, "is a file")
    code, _, err = cli(capsys, monkeypatch, "eval", "--checkpoint", "nowhere", "--out", str(occupied))
    assert_one_line_error(code, err, "is a file")  # before the checkpoint is even looked at
    used = tmp_path / "used"
    used.mkdir()
    (used / "metrics.jsonl").write_text('{"step": 1}\n')
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--no-resume", "--out", str(used))
    assert_one_line_error(code, err, "already holds a run")


def _eval(capsys, monkeypatch, teacher, out, *extra):
    args = ["eval", "--checkpoint", str(teacher), "--steps", "1", "--cfg", "1", "--images-per-prompt", "1"]
    return cli(capsys, monkeypatch, *args, "--limit-prompts", "1", "--out", str(out), *extra)


def test_results_folders_never_mix_and_score_compare_check_their_inputs(capsys, monkeypatch, tmp_path, tiny_teacher):
    ev = tmp_path / "ev"
    code, _, err = _eval(capsys, monkeypatch, tiny_teacher, ev)
    assert code == 0, err
    images = ev / "images"
    assert json.loads((ev / "results.json").read_text())["scored"] == 6
    # a used folder is refused; --overwrite replaces it (a stale prompt folder disappears)
    shutil.copytree(images / "00000", images / "00042")
    code, _, err = _eval(capsys, monkeypatch, tiny_teacher, ev)
    assert_one_line_error(code, err, "not empty", "--overwrite")
    code, _, err = _eval(capsys, monkeypatch, tiny_teacher, ev, "--overwrite")
    assert code == 0, err
    assert not (images / "00042").exists() and json.loads((ev / "results.json").read_text())["scored"] == 6
    # bad numbers through the CLI: NaN CFG, negative shift
    code, _, err = _eval(capsys, monkeypatch, tiny_teacher, tmp_path / "nan", "--cfg", "nan")
    assert_one_line_error(code, err, "cfg")
    code, _, err = _eval(capsys, monkeypatch, tiny_teacher, tmp_path / "neg", "--shift", "-1")
    assert_one_line_error(code, err, "shift")

    # score: a file the manifest does not list is left out (partial score = warning), wrong size reported
    stale = tmp_path / "stale"
    shutil.copytree(images, stale)
    shutil.copy(stale / "00000" / "samples" / "0000.png", stale / "00000" / "samples" / "0007.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(stale / "00001" / "samples" / "0000.png")
    code, out, err = cli(capsys, monkeypatch, "score", str(stale), "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "s.json").read_text())
    assert len(report["images"]) == 5  # 6 listed, one of the wrong size; the stale 0007.png is left out
    problems = " ".join(p["problem"] for p in report["problems"])
    assert "not in manifest.json" in problems and "wrong size" in problems
    assert err.count("warning:") == 1 and "partial score" in err and len(err.strip().split("\n")) == 1
    # nothing scorable: an error
    for png in stale.glob("*/samples/*.png"):
        png.write_bytes(b"not a png")
    code, _, err = cli(capsys, monkeypatch, "score", str(stale))
    assert_one_line_error(code, err, "nothing in")

    # compare: identical prompts and seeds pass; other prompts or other seeds are refused
    same = tmp_path / "same"
    shutil.copytree(images, same)
    code, out, err = cli(capsys, monkeypatch, "compare", str(images), str(same))
    assert code == 0 and "Same prompts and seeds (6 image pairs)" in out.replace("\n", " "), err
    reseeded = tmp_path / "reseeded"
    shutil.copytree(images, reseeded)
    manifest = json.loads((reseeded / "manifest.json").read_text())
    manifest["seeds"][2] = [s + 100 for s in manifest["seeds"][2]]
    (reseeded / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, monkeypatch, "compare", str(images), str(reseeded))
    assert_one_line_error(code, err, "seed")
    other = tmp_path / "other"
    shutil.copytree(images, other)
    md = other / "00003" / "metadata.jsonl"
    md.write_text(json.dumps({**json.loads(md.read_text()), "prompt": "a photo of something else"}) + "\n")
    code, _, err = cli(capsys, monkeypatch, "compare", str(images), str(other))
    assert_one_line_error(code, err, "different prompts")


def test_sample_warns_once_about_unknown_words_and_truncation(capsys, monkeypatch, tmp_path, tiny_teacher):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a photo of a zebra\nzebra unicorn circle\n" + "a red circle " * 10 + "\n")
    args = ["sample", "--checkpoint", str(tiny_teacher), "--prompts", str(prompts), "--out", str(tmp_path / "s")]
    code, _, err = cli(capsys, monkeypatch, *args, "--steps", "1", "--cfg", "1", "--images-per-prompt", "1")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, err
    assert "'zebra'" in warnings[0] and "'unicorn'" in warnings[0] and "2 word(s)" in warnings[0]
    assert "truncated" in warnings[1] and "prompt 3" in warnings[1]


def test_hung_reward_is_abandoned_not_waited_for(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(
        "import time, numpy as np\n"
        "from tdmr1.rewards.guard import call_reward\n"
        "from tdmr1.errors import RewardError\n"
        "def hang(images, prompts, metadata):\n"
        "    time.sleep(300)\n"
        "try:\n"
        "    call_reward(hang, np.zeros((1, 4, 4, 3), np.uint8), ['p'], [{}], timeout_s=0.5)\n"
        "except RewardError as exc:\n"
        "    print('error:', exc, flush=True)\n"
        "    raise SystemExit(2)\n"
    )
    t0 = time.time()
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=200)
    assert res.returncode == 2 and "timed out after 0.5 s" in res.stdout, res.stderr
    assert time.time() - t0 < 150  # the sleeping reward (300 s) is not joined at exit


def test_skip_budget_caps_consecutive_failures():
    budget = SkipBudget(2)
    budget.skip(ValueError("a"))
    budget.skip(ValueError("b"))
    budget.ok()
    budget.skip(ValueError("c"))
    budget.skip(ValueError("d"))
    with pytest.raises(RewardError, match="3 reward batches failed in a row"):
        budget.skip(ValueError("e"))
    assert budget.total == 5
