"""Checkpoints resolve from any working directory: shipped names, paths recorded inside a checkpoint
(relative to that checkpoint's folder), CLI paths passed as typed values (never re-parsed as YAML)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tdmr1.config import load_config
from tdmr1.errors import CheckpointError
from tdmr1.models.checkpoints import checkpoint_reference, resolve_checkpoint, shipped_root
from tdmr1.r1.config import RLConfig
from tdmr1.tdm.student import load_student_adapter


def _run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    code = "from tdmr1.cli.app import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _pair(tiny_teacher, tiny_student, folder):
    """teacher + student copied side by side into ``folder``, the student recording ``../teacher``."""
    shutil.copytree(tiny_teacher, folder / "teacher")
    shutil.copytree(tiny_student, folder / "tdm4")
    config_path = folder / "tdm4" / "config.json"
    config = json.loads(config_path.read_text())
    config["teacher"] = "../teacher"
    config_path.write_text(json.dumps(config))
    return folder / "teacher", folder / "tdm4"


def test_shipped_names_resolve_from_any_working_directory(tmp_path, monkeypatch):
    root = shipped_root()
    assert root is not None and (root / "shapes" / "tdm4" / "config.json").is_file()
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("checkpoints/shapes/tdm4") == root / "shapes" / "tdm4"
    adapter, config = load_student_adapter("checkpoints/shapes/tdm4")
    assert adapter and config["teacher"] == str(root / "shapes" / "teacher")  # shipped: ../teacher


def test_missing_checkpoint_is_one_line_saying_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint not found: checkpoints/shapes/nope") as err:
        resolve_checkpoint("checkpoints/shapes/nope")
    assert "\n" not in str(err.value) and "tdmr1 wheel" in str(err.value)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "absent")  # an absolute path never falls back to the shipped ones


def test_recorded_paths_resolve_against_the_recording_folder(tmp_path, monkeypatch):
    for folder in ("teacher", "tdm4"):
        (tmp_path / "a" / folder).mkdir(parents=True)
    (tmp_path / "b" / "teacher").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "b")  # the working directory has a "teacher" too: it must not win
    assert resolve_checkpoint("../teacher", relative_to=tmp_path / "a" / "tdm4") == tmp_path / "a" / "teacher"
    assert resolve_checkpoint("teacher") == tmp_path / "b" / "teacher"


def test_recorded_reference_is_relative_when_close_else_shipped_name_else_absolute(tmp_path):
    assert checkpoint_reference(tmp_path / "w" / "teacher", tmp_path / "w" / "tdm4") == "../teacher"
    assert checkpoint_reference(tmp_path / "runs/teacher/model", tmp_path / "runs/distill/model") == (
        "../../teacher/model"
    )
    far = tmp_path / "a" / "b" / "c" / "student"
    assert checkpoint_reference(shipped_root() / "shapes" / "teacher", far) == "checkpoints/shapes/teacher"
    assert checkpoint_reference(tmp_path / "x" / "teacher", far) == str(tmp_path / "x" / "teacher")


def test_student_moved_with_its_teacher_still_loads(tiny_teacher, tiny_student, tmp_path, monkeypatch):
    teacher, student = _pair(tiny_teacher, tiny_student, tmp_path / "2024.10")
    monkeypatch.chdir(tmp_path)
    _, config = load_student_adapter("2024.10/tdm4")
    assert config["teacher"] == str(teacher)


def test_typed_values_are_not_parsed_as_yaml():
    cfg = load_config(RLConfig, None, ["iterations=1"], values={"init": "2024.10", "world": "shapes"})
    assert cfg.init == "2024.10" and cfg.iterations == 1
    # values come after the YAML file and before --set overrides
    assert load_config(RLConfig, None, ["init=x"], values={"init": "2024.10"}).init == "x"


def test_cli_registers_every_command():
    from tdmr1.cli.app import app

    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"pretrain", "distill", "train", "sample", "eval", "demo", "score", "compare", "world", "config"} <= names


def test_train_with_a_relative_init_named_like_a_number_from_another_folder(tiny_teacher, tiny_student, tmp_path):
    _pair(tiny_teacher, tiny_student, tmp_path / "2024.10")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    sets = ["lora.rank=2", "prompts_per_iteration=2", "group_size=2", "minibatch_groups=1", "val_every=0"]
    args = ["train", "--init", "../2024.10/tdm4", "--out", "r1", "--iterations", "1"]
    res = _run_cli(*args, *[a for s in sets for a in ("--set", s)], cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    run_config = json.loads((elsewhere / "r1" / "config.json").read_text())
    assert run_config["init"] == str(tmp_path / "2024.10" / "tdm4")
    exported = json.loads((elsewhere / "r1" / "model" / "config.json").read_text())
    # the RL model records its teacher so that it resolves from its own folder
    assert resolve_checkpoint(exported["teacher"], relative_to=elsewhere / "r1" / "model") == (
        tmp_path / "2024.10" / "teacher"
    )
