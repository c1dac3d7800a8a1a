"""Exact resume: a run killed mid-way (after its last checkpoint, during a checkpoint write) and resumed logs
exactly the numbers of an uninterrupted run, whatever ``checkpoint_every`` is; no duplicate rows; orphaned
temporary files are removed; ``resume=False`` on a used folder is refused."""

from __future__ import annotations

import json

import pytest
import torch

from tdmr1.config import load_config
from tdmr1.errors import DataError
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.tdm import distill as distill_mod
from tdmr1.tdm.distill import DistillConfig, distill
from tdmr1.teacher import pretrain as pretrain_mod
from tdmr1.teacher.pretrain import PretrainConfig, pretrain
from tdmr1.training.progress import RunLogger
from tdmr1.training.rng import RunRNG, global_rng_untouched


class Killed(Exception):
    """Stands for kill -9 (raised inside the loop, after the step's row is logged)."""


def _kill_after(monkeypatch, module, step: int) -> None:
    """Make ``module``'s RunLogger raise right after logging ``step`` (before any checkpoint of that step)."""

    class KilledLogger(RunLogger):
        def step(self, s, scalars, every=1):
            super().step(s, scalars, every)
            if s == step:
                raise Killed

    monkeypatch.setattr(module, "RunLogger", KilledLogger)


def _rows(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def _orphans(run_dir) -> None:
    """What a kill during the writes of state.pt and of the exported model leaves behind."""
    (run_dir / ".state.pt.k1ll3d.tmp").write_bytes(b"\x80\x02half a pickle")
    (run_dir / "model" / ".model.safetensors.k1ll3d.tmp").write_bytes(b"half a tensor file")


def _same_weights(a, b) -> bool:
    sa, sb = EmbeddedT2I.load(a).state_for_save(None), EmbeddedT2I.load(b).state_for_save(None)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _pretrain_cfg(tiny, *extra):
    base = ["batch_size=4", "log_every=1", "snapshot_every=0", "sample_every=0", "warmup_steps=1"]
    return load_config(PretrainConfig, None, [*tiny, *base, "sampling.steps=1", *extra])


def test_pretrain_kill_and_resume_equals_uninterrupted(tmp_path, tiny_backbone_overrides, monkeypatch):
    full = tmp_path / "full"
    pretrain(_pretrain_cfg(tiny_backbone_overrides, "steps=4", "checkpoint_every=4"), full, quiet=True)
    part = tmp_path / "part"
    with monkeypatch.context() as m:
        _kill_after(m, pretrain_mod, 3)  # killed after step 3; last checkpoint at step 2
        with pytest.raises(Killed):
            pretrain(_pretrain_cfg(tiny_backbone_overrides, "steps=4", "checkpoint_every=2"), part, quiet=True)
    assert [r["step"] for r in _rows(part)] == [1, 2, 3]
    _orphans(part)
    torch.manual_seed(1234)  # whatever the global RNG holds, the resumed run does not read it
    pretrain(_pretrain_cfg(tiny_backbone_overrides, "steps=4", "checkpoint_every=2"), part, quiet=True)
    assert _rows(part) == _rows(full)  # every logged number, no duplicate row of step 3
    assert [r["step"] for r in _rows(part)] == [1, 2, 3, 4]
    assert _same_weights(full / "model", part / "model")
    assert not list(part.rglob("*.tmp"))
    with pytest.raises(DataError, match="already holds a run"):
        pretrain(_pretrain_cfg(tiny_backbone_overrides, "steps=4"), part, resume=False, quiet=True)


def _distill_cfg(teacher, *extra):
    base = [f"teacher={teacher}", "batch_size=2", "lora.rank=2", "sample_every=0", "log_every=1"]
    return load_config(DistillConfig, None, [*base, *extra])


def test_distill_kill_and_resume_equals_uninterrupted(tmp_path, tiny_teacher, monkeypatch):
    full = tmp_path / "full"
    distill(_distill_cfg(tiny_teacher, "iterations=3", "checkpoint_every=3"), full, quiet=True)
    part = tmp_path / "part"
    with monkeypatch.context() as m:
        _kill_after(m, distill_mod, 2)  # killed after iteration 2; last checkpoint (and export) at 1
        with pytest.raises(Killed):
            distill(_distill_cfg(tiny_teacher, "iterations=3", "checkpoint_every=1"), part, quiet=True)
    _orphans(part)
    torch.manual_seed(99)
    distill(_distill_cfg(tiny_teacher, "iterations=3", "checkpoint_every=1"), part, quiet=True)
    assert [r["step"] for r in _rows(part)] == [1, 2, 3]
    assert _rows(part) == _rows(full)
    assert _same_weights(full / "model", part / "model")
    assert not list(part.rglob("*.tmp"))


def test_run_rng_state_round_trip_and_global_rng_isolation():
    rng = RunRNG(7)
    rng.randn(3)
    rng.numpy.random(2)
    state = rng.state_dict()
    a = (rng.randn(4), rng.numpy.random(3))
    other = RunRNG(0)
    other.load_state_dict(state)
    b = (other.randn(4), other.numpy.random(3))
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    with global_rng_untouched():
        torch.randn(10)
    assert torch.equal(torch.get_rng_state(), before)
