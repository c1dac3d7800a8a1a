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
    "name, kind, beta, sur_cfg, t_min, prompts, micro",
    [
        ("sd35m_geneval", "sd3", 1.0, 2.5, (0.25, 0.55), 48, 12),
        ("sd35m_ocr", "sd3", 10.0, 4.5, (0.3, 0.3), 48, 12),
        ("zimage", "zimage", 1.0, 2.5, (0.25, 0.55), 24, 6),
    ],
)
def test_scale_configs(name, kind, beta, sur_cfg, t_min, prompts, micro):
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
    assert (cfg.prompts_per_iteration, cfg.per_device_batch) == (prompts, micro)
    layout = cfg.layout(8)  # the authors' 8 processes: prompts x 24 images, split evenly, in micro-batches
    assert (layout.images_per_process, layout.per_device_batch) == (prompts * 24 // 8, micro)
    assert layout.rows().tolist()[:6] == [0, 1, 2, 24, 25, 26]  # rank 0: 3 images of every group
    with pytest.raises(ConfigError):
        cfg.layout(7)


def test_bad_backbone_section():
    with pytest.raises(ConfigError, match="sigmas"):
        load_config(ScaleRLConfig, None, ["backbone.sigmas=[1.0, 0.5]"])
    with pytest.raises(ConfigError, match="backbone.kind"):
        load_config(ScaleRLConfig, None, ["backbone.kind=flux"])
