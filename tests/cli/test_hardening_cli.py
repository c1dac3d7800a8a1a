"""The last tracebacks and exit codes: every bad input below is ONE line and exit 2; Ctrl-C exits 130 and
says where the run stopped; a NaN init is refused; a NaN loss stops the run with its last state kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from helpers import assert_one_line_error, cli
from tdmr1.config import load_config, to_dict
from tdmr1.errors import RewardError
from tdmr1.models.checkpoints import ADAPTER_FILE
from tdmr1.reward_protocol import RewardOutput
from tdmr1.rewards.guard import call_reward
from tdmr1.rewards.serving import display_url
from tdmr1.tdm.student import load_student_adapter
from tdmr1.teacher import pretrain as pretrain_mod
from tdmr1.teacher.pretrain import PretrainConfig


def _student_copy(student, folder, config=None, adapter=None):
    """A copy of the tiny student whose config / adapter a test may change."""
    folder.mkdir(parents=True)
    adapter_state, student_config = load_student_adapter(student)  # the teacher comes back absolute
    save_file(adapter(adapter_state) if adapter else adapter_state, str(folder / ADAPTER_FILE))
    text = config if isinstance(config, str) else json.dumps(config(student_config) if config else student_config)
    (folder / "config.json").write_text(text)
    return folder


def _nan(state):
    return {k: torch.full_like(v, float("nan")) for k, v in state.items()}


def _wrong_shape(state):
    key = next(iter(state))
    return {**state, key: torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])}


@pytest.mark.parametrize(
    ("config", "adapter", "sets", "needles"),
    [
        ("[1, 2]", None, [], ["config.json", "JSON object"]),
        (lambda c: {**c, "sampling": "fast"}, None, [], ["config.json", "'sampling'"]),
        (None, _wrong_shape, [], ["has shape", "lora.rank"]),
        (None, None, ["lora.rank=4"], ["has shape", "lora.rank"]),
        (None, _nan, [], ["NaN or infinite"]),
        (None, None, ["group_size=100000000"], ["images per iteration"]),
        (None, None, ["seed=99999999999999999999"], ["64-bit"]),
    ],
)
def test_bad_inits_and_sizes_are_one_line(capsys, monkeypatch, tmp_path, tiny_student, config, adapter, sets, needles):
    init = _student_copy(tiny_student, tmp_path / "init", config, adapter)
    args = [
        "train",
        "--init",
        str(init),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "val_every=0",
        "--set",
        "lora.rank=2",
    ]
    code, _, err = cli(capsys, monkeypatch, *args, *[a for s in sets for a in ("--set", s)])
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_binary_and_list_prompt_files_are_one_line(capsys, monkeypatch, tmp_path):
    binary, listed = tmp_path / "p.bin", tmp_path / "p.jsonl"
    binary.write_bytes(bytes(range(256)) * 8)
    listed.write_text("[1, 2]\n")
    sample = ["sample", "--checkpoint", "nowhere", "--out", str(tmp_path / "s")]
    code, _, err = cli(capsys, monkeypatch, *sample, "--prompts", str(binary))
    assert_one_line_error(code, err, "binary file")
    render = ["world", "render", "--out", str(tmp_path / "r")]
    code, _, err = cli(capsys, monkeypatch, *render, "--prompts", str(binary))
    assert_one_line_error(code, err, "binary file")
    code, _, err = cli(capsys, monkeypatch, *render, "--prompts", str(listed))
    assert_one_line_error(code, err, "p.jsonl:1", "not a list")
    (tmp_path / "latin1.txt").write_bytes("a red caf\xe9\n".encode("latin-1"))
    code, _, err = cli(capsys, monkeypatch, *render, "--prompts", str(tmp_path / "latin1.txt"))
    assert_one_line_error(code, err, "not UTF-8")


def _stopped(code: int, err: str, expected: int, *needles: str) -> None:
    """Exit ``expected``; the last stderr line (after the progress bar's) is the one-line error."""
    assert code == expected and "Traceback" not in err, err
    last = err.strip("\n").split("\n")[-1]
    assert last.startswith("error: ") and all(n in last for n in needles), err


def _pretrain(capsys, monkeypatch, tiny, out, *extra):
    base = [*tiny, "steps=3", "checkpoint_every=1", "batch_size=2", "sample_every=0", "snapshot_every=0", *extra]
    return cli(capsys, monkeypatch, "pretrain", "--out", str(out), *[a for s in base for a in ("--set", s)])


def _second_call(monkeypatch, module, name, action):
    """``module.name`` as before, but ``action(original, *args)`` decides its second call."""
    original, calls = getattr(module, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        return action(original, *args, **kwargs) if len(calls) == 2 else original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)


def test_ctrl_c_during_training_exits_130_and_says_where(capsys, monkeypatch, tmp_path, tiny_backbone_overrides):
    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    _second_call(monkeypatch, pretrain_mod, "flow_matching_loss", interrupt)
    code, _, err = _pretrain(capsys, monkeypatch, tiny_backbone_overrides, tmp_path / "run")
    _stopped(code, err, 130, "interrupted after step 1", "resume")
    monkeypatch.setattr(pretrain_mod, "get_world", interrupt)  # Ctrl-C outside the loop: still non-zero
    code, _, err = _pretrain(capsys, monkeypatch, tiny_backbone_overrides, tmp_path / "run")
    _stopped(code, err, 130, "interrupted")


def test_nan_loss_stops_with_the_last_good_state(capsys, monkeypatch, tmp_path, tiny_backbone_overrides):
    _second_call(monkeypatch, pretrain_mod, "flow_matching_loss", lambda f, *a, **k: f(*a, **k) * float("nan"))
    code, _, err = _pretrain(capsys, monkeypatch, tiny_backbone_overrides, tmp_path / "run")
    _stopped(code, err, 2, "loss is nan at step 2", "last checkpoint")
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 1
    assert all(bool(torch.isfinite(v).all()) for v in state["modules"]["model"].values() if v.is_floating_point())


def test_full_disk_and_random_state_are_one_line(capsys, monkeypatch, tmp_path, tiny_backbone_overrides):
    from tdmr1.training import state as state_mod

    def full(*_a, **_k):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    _second_call(monkeypatch, state_mod.torch, "save", lambda *_a, **_k: full())
    code, _, err = _pretrain(capsys, monkeypatch, tiny_backbone_overrides, tmp_path / "run")
    _stopped(code, err, 2, "cannot write", "previous state is intact")
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 1
    monkeypatch.undo()
    run = tmp_path / "random"
    run.mkdir()
    cfg = [*tiny_backbone_overrides, "steps=3", "checkpoint_every=1", "batch_size=2", "sample_every=0"]
    cfg += ["snapshot_every=0", "world=shapes"]
    (run / "config.json").write_text(json.dumps(to_dict(load_config(PretrainConfig, None, cfg))))
    (run / "state.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    code, _, err = _pretrain(capsys, monkeypatch, tiny_backbone_overrides, run)
    assert_one_line_error(code, err, "state.pt", "cannot resume")


class _Rude:
    name = "rude"

    def __init__(self, what):
        self.what = what

    def __call__(self, images, prompts, metadata):
        if isinstance(self.what, BaseException):
            raise self.what
        return RewardOutput(self.what)


@pytest.mark.parametrize(
    ("what", "needle"),
    [
        (["0.5", "0.5"], "not numbers"),
        ([None, 1.0], "not numbers"),
        (SystemExit(0), "raised SystemExit"),
        (KeyboardInterrupt(), "raised KeyboardInterrupt"),
        ([1e39, 0.0], "non-finite"),
    ],
)
def test_a_reward_cannot_end_or_poison_a_run(what, needle):
    with pytest.raises(RewardError, match=needle):
        call_reward(_Rude(what), np.zeros((2, 8, 8, 3), np.uint8), ["a", "b"], [{}, {}], timeout_s=5)


def test_servers_never_print_the_unspecified_address():
    assert "0.0.0.0" not in display_url("0.0.0.0", 8700) and display_url("127.0.0.1", 1) == "http://127.0.0.1:1"


def test_train_refuses_a_foreign_folder_untouched(capsys, monkeypatch, tmp_path, tiny_student):
    theirs = tmp_path / "theirs"
    (theirs / "tb").mkdir(parents=True)
    (theirs / "tb" / "events").write_bytes(b"their events")
    (theirs / "metrics.jsonl").write_text('{"step": 1}\n')
    (theirs / "config.json").write_text('{"world": "shapes", "lora": {"rank": 8}}')
    before = {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
    args = ["train", "--init", str(tiny_student), "--out", str(theirs), "--set", "lora.rank=2", "--reward", "likes"]
    code, _, err = cli(capsys, monkeypatch, *args)
    assert_one_line_error(code, err, "another config", "lora.rank")
    assert {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()} == before  # no likes.sqlite either
