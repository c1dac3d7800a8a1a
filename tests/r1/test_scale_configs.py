"""configs/scale/*.yaml load as ScaleRLConfig and carry the authors' layout, schedule and values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from tdmr1.config import load_config  # noqa: E402
from tdmr1.errors import ConfigError  # noqa: E402
from tdmr1.models.diffusers_backbone import SCHEDULES  # noqa: E402
from tdmr1.models.lora.presets import lora_settings  # noqa: E402
from tdmr1.r1.scale_config import ScaleRLConfig  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "scale"


@pytest.mark.parametrize(
    "name, kind, beta, sur_cfg, t_min",
    [
        ("sd35m_geneval", "sd3", 1.0, 2.5, (0.25, 0.55)),
        ("sd35m_ocr", "sd3", 10.0, 4.5, (0.3, 0.3)),
        ("zimage", "zimage", 1.0, 2.5, (0.25, 0.55)),
    ],
)
def test_scale_configs(name, kind, beta, sur_cfg, t_min):
    cfg = load_config(ScaleRLConfig, CONFIGS / f"{name}.yaml")
    assert cfg.backbone.kind == kind
    preset = lora_settings(f"{kind}-authors")
    assert (cfg.lora.rank, cfg.lora.alpha, tuple(cfg.lora.target_modules)) == (32, 64.0, preset.target_modules)
    solver, sigmas = SCHEDULES[kind]
    assert cfg.backbone.solver == solver
    assert torch.equal(torch.tensor(cfg.backbone.sigmas, dtype=torch.float32), sigmas)
    assert (cfg.beta, cfg.surrogate_cfg, (cfg.t_min_reward, cfg.t_min_surrogate)) == (beta, sur_cfg, t_min)
    assert (cfg.lr_generator, cfg.lr_fake, cfg.lr_surrogate) == (7.5e-5, 3e-4, 3e-4)
    assert cfg.group_size == 24
    layout = cfg.layout(8)
    assert layout.images_per_process * 8 == cfg.prompts_per_iteration * cfg.group_size
    with pytest.raises(ConfigError):
        cfg.layout(7)


def test_bad_backbone_section():
    with pytest.raises(ConfigError, match="sigmas"):
        load_config(ScaleRLConfig, None, ["backbone.sigmas=[1.0, 0.5]"])
    with pytest.raises(ConfigError, match="backbone.kind"):
        load_config(ScaleRLConfig, None, ["backbone.kind=flux"])
