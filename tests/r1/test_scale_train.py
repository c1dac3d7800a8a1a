"""Scale path through the real CLI: `tdmr1 train --backbone sd3|zimage --model <tiny pipeline folder>` runs
TDM-R1 iterations on CPU with a black-box reward and writes the generator adapter; `tdmr1 convert-lora`
turns it into the authors' order-only .ckpt and back, exactly."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from tdmr1.cli.app import main  # noqa: E402
from tdmr1.models.tiny import save_tiny_pipeline  # noqa: E402


def _cli(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["tdmr1", *args])
    main()  # user errors exit 2 (SystemExit); success returns


@pytest.fixture(scope="module", params=["sd3", "zimage"])
def pipeline(request, tmp_path_factory):
    return request.param, save_tiny_pipeline(request.param, tmp_path_factory.mktemp(request.param) / "pipe")


def test_train_scale_backbone_through_cli(pipeline, tmp_path, monkeypatch, brightness_reward_file):
    kind, folder = pipeline
    reward = brightness_reward_file
    out = tmp_path / "run"
    _cli(
        monkeypatch,
        "train",
        "--backbone",
        kind,
        "--model",
        str(folder),
        "--reward",
        f"{reward}:Brightness",
        "--iterations",
        "2",
        "--out",
        str(out),
        *("--set backbone.resolution=64 --set lora.rank=2 --set prompts_per_iteration=2 --set group_size=2").split(),
        *("--set minibatch_groups=1 --set train_steps_per_iteration=1 --set sur_rank_every=1").split(),
        *("--set sur_rank_draws=1 --set sur_rank_bands=[] --set val_every=0 --set checkpoint_every=1").split(),
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "reward" in r]
    assert len(steps) == 2, rows
    assert all(0.0 <= r["reward"] <= 1.0 and r["loss_fake"] == r["loss_fake"] for r in steps)
    adapter = load_file(str(out / "model" / "adapter.safetensors"))
    assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if ".lora_B." in k)  # the generator moved
    info = json.loads((out / "model" / "config.json").read_text())
    assert info["kind"] == kind and info["rl_iterations"] == 2 and info["lora"]["rank"] == 2
    assert (out / "samples" / "after.png").is_file() and (out / "state.pt").is_file()

    # the adapter -> the authors' order-only .ckpt -> named again: exact
    ckpt, back = tmp_path / "gen.ckpt", tmp_path / "back.safetensors"
    _cli(monkeypatch, "convert-lora", str(out / "model" / "adapter.safetensors"), str(ckpt), "--model", str(folder))
    _cli(monkeypatch, "convert-lora", str(ckpt), str(back), "--model", str(folder), "--rank", "2")
    tensors = torch.load(ckpt, weights_only=True)["ema_parameters"]  # the authors' EMA-wrapper form
    assert isinstance(tensors, list) and len(tensors) == len(adapter)
    again = load_file(str(back))
    assert again.keys() == adapter.keys() and all(torch.equal(again[k], adapter[k]) for k in adapter)


def test_convert_lora_rejects_wrong_layout(pipeline, tmp_path, monkeypatch, capsys):
    _, folder = pipeline
    bad = tmp_path / "bad.ckpt"
    torch.save([torch.zeros(2, 3)], bad)
    with pytest.raises(SystemExit) as exc:
        _cli(monkeypatch, "convert-lora", str(bad), str(tmp_path / "x.safetensors"), "--model", str(folder))
    assert exc.value.code == 2 and "1 tensors" in capsys.readouterr().err


def test_explicit_surrogate_is_embedded_only(pipeline, tmp_path, monkeypatch, capsys):
    kind, folder = pipeline
    with pytest.raises(SystemExit) as exc:
        _cli(
            monkeypatch,
            "train",
            "--model",
            str(folder),
            "--reward",
            "shapes",
            "--out",
            str(tmp_path / "run"),
            *("--set backbone.resolution=64 --set lora.rank=2 --set surrogate=explicit").split(),
        )
    assert exc.value.code == 2 and "embedded-only" in capsys.readouterr().err
