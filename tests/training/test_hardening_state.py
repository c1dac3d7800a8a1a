"""Run folders are data, never code: a planted ``state.pt`` pickle runs nothing, random bytes are one error,
another run's folder is refused untouched, and a resume with another config is refused."""

from __future__ import annotations

import json
import os

import pytest
import torch

from helpers import assert_one_line_error, cli
from tdmr1.config import load_config, to_dict
from tdmr1.errors import CheckpointError, DataError
from tdmr1.teacher.pretrain import PretrainConfig
from tdmr1.training.run_folder import check_run_folder
from tdmr1.training.state import load_training_state, prepare_run_dir, save_training_state


class _Payload:
    """Unpickling this object runs ``os.system``: what a hostile run folder would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _modules():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    return {"lin": lin}, {"opt": torch.optim.AdamW(lin.parameters(), lr=1e-3)}


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_planted_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "modules": _Payload(marker)}, tmp_path / "state.pt")
    modules, opts = _modules()
    with pytest.raises(CheckpointError, match="could run code: refused"):
        load_training_state(tmp_path, modules, opts)
    assert not marker.exists()


def test_state_round_trips_with_weights_only(tmp_path):
    modules, opts = _modules()
    extra_state = {"tags": ("a", "b"), "py": __import__("random").getstate()}
    save_training_state(tmp_path, 7, modules, opts, extra=extra_state)
    fresh, fresh_opts = _modules()
    with torch.no_grad():
        fresh["lin"].weight.zero_()
    step, extra = load_training_state(tmp_path, fresh, fresh_opts)
    assert step == 7 and extra["tags"] == ("a", "b")
    assert torch.equal(fresh["lin"].weight, modules["lin"].weight)


@pytest.mark.parametrize("content", [os.urandom(4096), b"PK\x03\x04garbage", b""])
def test_random_bytes_state_is_one_error(tmp_path, content):
    (tmp_path / "state.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_training_state(tmp_path, *_modules())


def test_cli_refuses_a_planted_state_without_running_it(capsys, monkeypatch, tmp_path, tiny_backbone_overrides):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    overrides = ["world=shapes", *tiny_backbone_overrides]
    (run / "config.json").write_text(json.dumps(to_dict(load_config(PretrainConfig, None, overrides))))
    torch.save({"step": 1, "modules": _Payload(marker)}, run / "state.pt")
    sets = [a for o in tiny_backbone_overrides for a in ("--set", o)]
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--out", str(run), *sets)
    assert_one_line_error(code, err, "cannot resume", "refused")
    assert not marker.exists()


def _foreign(folder):
    """Another run's folder: metrics, TensorBoard events, an exported model and its config, no state."""
    (folder / "tb").mkdir(parents=True)
    (folder / "tb" / "events.out").write_bytes(b"their events")
    (folder / "model").mkdir()
    (folder / "model" / "model.safetensors").write_bytes(b"their weights")
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (folder / "config.json").write_text(json.dumps({"world": "glyphs", "steps": 10, "lr": 0.5}))


def test_foreign_run_folder_is_refused_and_untouched(capsys, monkeypatch, tmp_path):
    run = tmp_path / "theirs"
    _foreign(run)
    before = _snapshot(run)
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--out", str(run), "--set", "steps=1")
    assert_one_line_error(code, err, "another config", "choose another --out")
    assert _snapshot(run) == before
    (run / "config.json").unlink()  # no config at all: still someone else's files
    before = _snapshot(run)
    code, _, err = cli(capsys, monkeypatch, "pretrain", "--out", str(run), "--set", "steps=1")
    assert_one_line_error(code, err, "no config.json")
    assert _snapshot(run) == before


def test_resume_with_another_config_is_refused_but_run_control_may_change(tmp_path):
    cfg = to_dict(load_config(PretrainConfig, None, ["steps=4"]))
    assert not prepare_run_dir(tmp_path, True, cfg)  # an empty folder: written config marks it as this run's
    assert json.loads((tmp_path / "config.json").read_text()) == cfg
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')  # killed before its first checkpoint
    assert not prepare_run_dir(tmp_path, True, cfg)  # the same command restarts cleanly
    assert not (tmp_path / "metrics.jsonl").exists()
    longer = to_dict(load_config(PretrainConfig, None, ["steps=40", "max_minutes=5", "checkpoint_every=3"]))
    check_run_folder(tmp_path, longer)  # extending a run is allowed
    changed = to_dict(load_config(PretrainConfig, None, ["steps=4", "lr=0.1"]))
    with pytest.raises(DataError, match="another config .*lr"):
        prepare_run_dir(tmp_path, True, changed)
    rl_like = {**cfg, "lora": {"rank": 4}}
    (tmp_path / "config.json").write_text(json.dumps(rl_like))
    with pytest.raises(DataError, match=r"lora.rank: 4 there, 8 now"):
        check_run_folder(tmp_path, {**cfg, "lora": {"rank": 8}})
