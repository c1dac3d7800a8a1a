"""What several test files share (not a test file: no test imports another one): the tests' dense reward,
the small TDM-R1 config of the trainer's tests and the mean brightness of its generator, and the
in-process CLI with its one-line-error check."""

from __future__ import annotations

import sys
from pathlib import Path

from brightness_reward import Brightness
from tdmr1.config import load_config
from tdmr1.r1.config import RLConfig

__all__ = [
    "BRIGHTNESS_REWARD_FILE",
    "Brightness",
    "assert_one_line_error",
    "cli",
    "mean_brightness",
    "rl_cfg",
]

#: the file of :class:`Brightness`, as a user's reward file: pass ``f"reward={BRIGHTNESS_REWARD_FILE}:Brightness"``
BRIGHTNESS_REWARD_FILE = Path(__file__).resolve().with_name("brightness_reward.py")


def rl_cfg(student, *extra: str) -> RLConfig:
    """A tiny TDM-R1 run of ``student`` (2 prompt groups of 2 images, one group per minibatch), then ``extra``."""
    base = [
        f"init={student}",
        "lora.rank=2",
        "prompts_per_iteration=2",
        "group_size=2",
        "minibatch_groups=1",
        "val_every=0",
        "checkpoint_every=1",
    ]
    return load_config(RLConfig, None, [*base, *extra])


def mean_brightness(trainer) -> float:
    """Mean pixel value (0..1) of the TDM-R1 ``trainer``'s generator on 16 fixed prompts and seeds."""
    from tdmr1.pipelines.generate import generate_images

    prompts = [md["prompt"] for md in trainer.pool[:16]]
    with trainer.roles.use("generator"):
        images = generate_images(trainer.model, prompts, list(range(16)), trainer.sampling)
    return float(images.mean() / 255.0)


def cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run ``tdmr1 ARGS`` in-process through ``main()``; (exit code, stdout, stderr). 40 columns: a
    message that rich would wrap must still come out as one line."""
    from tdmr1.cli.app import main

    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr(sys, "argv", ["tdmr1", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
