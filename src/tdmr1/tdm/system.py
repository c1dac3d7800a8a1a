"""A few-step system: one velocity backbone with LoRA roles, its frozen text encoder and the student's fixed K-step
schedule, shared by TDM distillation and TDM-R1; ``fast_roles`` runs roles on merged copies (docs/DESIGN_NOTES.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from tdmr1.diffusion.flow import bridge, draw_levels, euler_step, expand_like, x0_from_velocity
from tdmr1.diffusion.sampling import Trajectory, sample
from tdmr1.errors import ConfigError
from tdmr1.models.lora.merged_roles import MergedRoles
from tdmr1.models.lora.roles import LoraSettings, Roles
from tdmr1.models.registry import schedule_of

Text = tuple[Tensor, Tensor]


class FewStepSystem:
    """Backbone + roles + the student's K-step deterministic schedule."""

    def __init__(
        self,
        model,
        roles: Sequence[str],
        lora: LoraSettings | Mapping[str, LoraSettings],
        steps: int = 4,
        shift: float = 3.0,
        device: torch.device | str = "cpu",
        fast_roles: bool = True,
        channels_last: bool = True,
        merge_max_params: int = 50_000_000,
    ):
        """``fast_roles``, ``channels_last`` (of the merged copies) and ``merge_max_params`` (larger backbones
        run live: a copy per role would not fit) choose how roles run; see the module docstring."""
        self.model = model
        model.requires_grad_(False)
        self.roles = Roles(model.denoiser, roles, lora)
        self.device = torch.device(device)
        model.to(self.device)  # after the adapters exist, so that they move too (parameters keep identity)
        sigmas, self.solver = schedule_of(model, steps, shift)
        self.sigmas = sigmas.to(self.device)
        self.shift = shift
        n_params = sum(p.numel() for p in model.denoiser.parameters())
        opted_in = getattr(model, "merged_roles", False)  # backbones whose merged forwards are checked
        self.merged = MergedRoles(self.roles, channels_last) if opted_in and n_params <= merge_max_params else None
        self.fast_roles = bool(fast_roles)

    def set_fast_roles(self, on: bool) -> None:
        """Run roles on merged copies (True) or live (False); allowed at any time, the results agree to
        float rounding."""
        if not isinstance(on, bool):
            raise ConfigError(f"fast_roles must be true or false, got {on!r}")
        self.fast_roles = on

    def _merged_for(self, role: str) -> MergedRoles | None:
        """The merged copies when ``role`` runs on them in this forward, else None (run live)."""
        merged = self.merged
        if merged is None or not self.fast_roles or not merged.supports(role):
            return None
        if any(m._forward_hooks or m._forward_pre_hooks for m in self.model.denoiser.modules()):
            return None  # someone listens to the live modules (e.g. a feature tap)
        return merged

    @contextlib.contextmanager
    def running(self, role: str) -> Iterator[None]:
        """Inside the block, ``self.model(x, s, text)`` runs as ``role`` (no-grad: merged copy when enabled)."""
        merged = None if torch.is_grad_enabled() else self._merged_for(role)
        if merged is None:
            with self.roles.use(role):
                yield
        else:
            with merged.swapped_in(self.model, merged.network(role)):
                yield

    def randn(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal images [n, C, H, W] on the system's device."""
        return torch.randn((n, *self.model.image_shape), generator=generator, device=self.device)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Text:
        return self.model.encode_prompts(prompts)

    def velocity(self, role: str, x: Tensor, s: Tensor, text: Text) -> Tensor:
        merged = self._merged_for(role)
        if merged is not None:
            return merged.call(self.model, role, torch.is_grad_enabled(), x, s, text)
        with self.roles.use(role):
            return self.model(x, s, text)

    def x0(self, role: str, x: Tensor, s: Tensor, text: Text) -> Tensor:
        return x0_from_velocity(x, self.velocity(role, x, s, text), s)

    def x0_cond_uncond(self, role: str, x: Tensor, s: Tensor, cond: Text, uncond: Text) -> tuple[Tensor, Tensor]:
        """(x0_cond, x0_uncond) of a role; two forwards of the same batch size, so that a role whose
        adapter is still zero gives bit-identical x0_cond to the base (batching changes float rounding)."""
        return self.x0(role, x, s, cond), self.x0(role, x, s, uncond)

    @torch.no_grad()
    def rollout(self, text: Text, noise: Tensor, role: str = "generator") -> Trajectory:
        """The deterministic K-step path of ``role`` from ``noise`` (all K+1 states kept)."""
        with self.running(role):
            return sample(lambda x, s: self.model(x, s, text), noise, self.sigmas, solver=self.solver)

    def generator_step(self, x: Tensor, j: Tensor, text: Text, role: str = "generator") -> tuple[Tensor, Tensor]:
        """One student step WITH grad from states at step indices ``j`` [N]: (x0_hat, x_next).

        ``x_next`` is the Euler step ``x - (s_j - s_{j+1}) v`` from ``x`` for every solver: the point the
        fake-score and generator terms are noised up from (with DPM-Solver++ the authors do the same and use
        the rollout's own DPM states only for the surrogate; no gradient flows through ``x_next``)."""
        s, s_next = self.sigmas[j], self.sigmas[j + 1]
        v = self.velocity(role, x, s, text)
        return x0_from_velocity(x, v, s), euler_step(x, v, s, s_next)

    def euler_from_x0(self, x: Tensor, x0: Tensor, j: Tensor) -> Tensor:
        """The Euler step of :meth:`generator_step` from a state ``x`` at step indices ``j`` and its data
        prediction ``x0`` (the velocity is ``(x - x0) / s_j``; every trained state has s_j > 0)."""
        s, s_next = self.sigmas[j], self.sigmas[j + 1]
        return euler_step(x, (x - x0) / expand_like(s, x), s, s_next)

    def sample_levels(
        self, low: Tensor, high: Tensor | float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """tau uniform in pre-shift space between levels ``low`` [N] and ``high`` (shifted back)."""
        return draw_levels(low, self.shift, generator, t_max=high)

    @staticmethod
    def diffuse(x: Tensor, s: Tensor, tau: Tensor, noise: Tensor) -> Tensor:
        """Bridge ``x`` at levels ``s`` [N] up to ``tau`` [N] with ``noise``."""
        return bridge(x, s, tau, noise)
