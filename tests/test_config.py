"""Config system: YAML -> typed dataclasses, overrides, and one-line errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tdmr1.config import describe_config, load_config, merge_into, option, parse_override
from tdmr1.errors import ConfigError


@dataclass
class Inner:
    lr: float = option(1e-3, "learning rate")
    betas: tuple[float, float] = option((0.9, 0.999), "Adam betas")
    mode: str = option("base", "reference")


@dataclass
class Outer:
    name: str = option("x", "run name")
    steps: int = option(10, "steps")
    flag: bool = option(False, "a switch")
    inner: Inner = option(factory=Inner, doc="section")
    tags: list[str] = option(factory=list, doc="tags")
    maybe: int | None = option(None, "optional int")


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ninner:\n  lr: 0.1\n  betas: [0.0, 0.95]\ntags: [a, b]\n")
    cfg = load_config(Outer, path, ["inner.lr=1e-4", "flag=true", "maybe=3"])
    assert cfg.steps == 5 and cfg.flag is True and cfg.maybe == 3
    assert cfg.inner.lr == pytest.approx(1e-4)
    assert cfg.inner.betas == (0.0, 0.95)
    assert cfg.tags == ["a", "b"]
    assert merge_into(cfg, ["steps=7"]).steps == 7


def test_int_accepted_for_float_but_not_reverse():
    assert load_config(Outer, None, ["inner.lr=1"]).inner.lr == 1.0
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_config(Outer, None, ["steps=1.5"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("inner.lrr=1", "unknown key 'inner.lrr'"),
        ("nope=1", "unknown key 'nope'"),
        ("inner.lr=abc", "inner.lr: expected a number"),
        ("flag=3", "flag: expected true/false"),
        ("inner=3", "inner: expected a section"),
        ("inner.betas=[1, 2, 3]", "inner.betas: expected 2 items"),
    ],
)
def test_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(Outer, None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError, match="must look like"):
        parse_override("steps")


def test_describe_lists_every_documented_field():
    keys = {row[0]: row[2] for row in describe_config(Outer)}
    assert keys["inner.lr"] == "learning rate"
    assert set(keys) == {"name", "steps", "flag", "inner.lr", "inner.betas", "inner.mode", "tags", "maybe"}


@pytest.mark.parametrize(
    "override", ["backbone.text_heads=0", "backbone.layers_per_block=0", "backbone.block_out_channels=[]"]
)
def test_backbone_ranges_are_checked_at_load_time(override):
    from tdmr1.teacher.pretrain import PretrainConfig

    with pytest.raises(ConfigError):
        load_config(PretrainConfig, None, [override])
