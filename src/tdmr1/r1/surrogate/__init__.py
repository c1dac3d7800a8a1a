"""TDM-R1's surrogate reward in two variants behind one interface (``loss``, ``clean_reward``,
``reward_direction``, ``after_step``); see docs/DESIGN_NOTES.md."""

from __future__ import annotations

from tdmr1.errors import ConfigError
from tdmr1.r1.config import RLConfig, batch_layout
from tdmr1.r1.surrogate.explicit import ExplicitSurrogate
from tdmr1.r1.surrogate.implicit import ImplicitSurrogate
from tdmr1.tdm.system import FewStepSystem

Surrogate = ImplicitSurrogate | ExplicitSurrogate


def make_surrogate(system: FewStepSystem, cfg: RLConfig, processes: int) -> Surrogate:
    """The surrogate ``cfg.surrogate`` names; the explicit one taps the embedded UNet's mid block."""
    group_reduce = batch_layout(cfg, 0, processes).group_reduce  # several processes: whole groups' means
    if cfg.surrogate == "implicit":
        return ImplicitSurrogate(system, cfg, group_reduce)
    denoiser = system.model.denoiser
    if not hasattr(denoiser, "mid_block"):
        raise ConfigError(
            "surrogate=explicit taps the embedded UNet's mid block: it is embedded-only; "
            "scale-path backbones (sd3, zimage) train the implicit surrogate (surrogate=implicit)"
        )
    return ExplicitSurrogate(
        system,
        cfg,
        denoiser.mid_block,
        denoiser.config.block_out_channels[-1],
        denoiser.config.cross_attention_dim,
        group_reduce,
    )


def surrogate_roles(cfg: RLConfig) -> list[str]:
    """The LoRA roles the surrogate ``cfg.surrogate`` adds to the backbone (none for the explicit one)."""
    return ImplicitSurrogate.roles if cfg.surrogate == "implicit" else ExplicitSurrogate.roles
