"""The three role updates of an iteration (fake score, surrogate, generator): gradients accumulated over
minibatches of whole prompt groups, then one optimizer step per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch

from tdmr1.diffusion.flow import draw_levels
from tdmr1.r1.config import RLConfig
from tdmr1.r1.draws import draw_surrogate_points, group_noise, reward_point
from tdmr1.r1.gate import RewardGate
from tdmr1.r1.losses import generator_rl_loss
from tdmr1.r1.rollout import Rollout
from tdmr1.r1.surrogate import Surrogate
from tdmr1.tdm.system import FewStepSystem, Text
from tdmr1.tdm.system_losses import fake_draws, fake_loss
from tdmr1.training.distributed import BatchLayout, all_reduce_grads, average_stats


def make_optimizers(cfg: RLConfig, system: FewStepSystem, surrogate: Surrogate) -> dict[str, torch.optim.Optimizer]:
    """AdamW per trained role: ``fake``, ``surrogate`` (its LoRA role or reward head), ``generator``."""

    def adamw(params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=cfg.weight_decay)

    lr_sur = cfg.lr_surrogate if cfg.surrogate == "implicit" else cfg.lr_head
    return {
        "fake": adamw(system.roles.parameters("fake"), cfg.lr_fake, cfg.betas_fake),
        "surrogate": adamw(surrogate.parameters(), lr_sur, cfg.betas_surrogate),
        "generator": adamw(system.roles.parameters("generator"), cfg.lr_generator, cfg.betas_generator),
    }


def optimizer_step(opt: torch.optim.Optimizer, grad_clip: float) -> float:
    """Gradients averaged over processes and clipped, one step, gradients cleared; returns the gradient norm."""
    params = [p for g in opt.param_groups for p in g["params"]]
    all_reduce_grads([p for p in params if p.grad is not None])
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(norm)


class Minibatch(NamedTuple):
    """Whole prompt groups ``groups`` of a rollout: this process's rows ``idx`` of it and their positions ``pos``
    among the minibatch's rows laid out group-major in ``groups`` order (where a draw for it is read)."""

    idx: torch.Tensor
    pos: torch.Tensor
    groups: torch.Tensor


class RoleUpdates:
    """Gradients of the fake-score, surrogate and generator roles on a rollout; every random draw from ``gen``
    (the run's own generator, in a fixed order), the whole batch's draws on every process."""

    def __init__(
        self,
        cfg: RLConfig,
        system: FewStepSystem,
        surrogate: Surrogate,
        layout: BatchLayout,
        gen: torch.Generator,
        uncond_1: Text,
        steps: int,
        device: torch.device,
        gate: RewardGate | None = None,
    ):
        self.cfg, self.system, self.surrogate, self.layout = cfg, system, surrogate, layout
        self.gate = gate or RewardGate(None)
        self.gen, self.uncond_1, self.steps, self.device = gen, uncond_1, steps, device

    def minibatches(self, ro: Rollout) -> Iterator[Minibatch]:
        """Minibatches of ``minibatch_groups`` whole groups of ``ro`` in a random order
        (:meth:`BatchLayout.minibatch_order`)."""
        order = torch.randperm(self.layout.groups, generator=self.gen, device=self.device)
        for groups in self.layout.minibatch_order(order):
            idx, pos = self.layout.minibatch_rows(groups.cpu())
            yield Minibatch(idx.to(self.device), pos.to(self.device), groups)

    def take(self, full: torch.Tensor, mb: Minibatch) -> torch.Tensor:
        """This process's rows of a draw made for the whole minibatch ``mb`` (identity for one process)."""
        return full if self.layout.processes == 1 else full.index_select(0, mb.pos)

    def spread(self, local: torch.Tensor, mb: Minibatch) -> torch.Tensor:
        """This process's rows ``local`` of ``mb`` at their places among the whole minibatch's (zeros elsewhere)."""
        out = local.new_zeros(len(local) * self.layout.processes, *local.shape[1:])
        return out.index_copy(0, mb.pos, local)

    def group_draws(self, ro: Rollout, mb: Minibatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(k, tau, xi) of this process's rows of ``mb``: one surrogate draw per group of the whole minibatch."""
        cfg, sys_ = self.cfg, self.system
        ids = torch.sort(mb.groups).values  # the draws' order: sorted group ids, the same on every process
        args = (cfg.t_min_surrogate, cfg.t_max_surrogate, cfg.tau_margin, cfg.surrogate_clean_share)
        k, tau = draw_surrogate_points(sys_.sigmas, sys_.shift, ids, self.gen, *args)
        xi = group_noise(tuple(ro.states.shape[2:]), ids, self.gen, self.device)
        at = torch.searchsorted(ids, ro.group[mb.idx])
        return k[at], tau[at], xi[at]

    def reward_point(
        self, x_n: torch.Tensor, s_next: torch.Tensor, group: torch.Tensor, mb: Minibatch, x0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the reward direction is read for this process's rows (:func:`reward_point`); groups that span
        processes: drawn for the whole minibatch's rows, this process's kept."""
        args = (self.system.shift, self.cfg.t_min_reward, self.gen, self.t_max_reward())
        if not self.layout.spans:  # every process holds a share of each of the minibatch's groups
            return reward_point(x_n, s_next, group, *args, x0)
        whole = mb.groups.repeat_interleave(self.layout.group_size)
        x_r, tau_r = reward_point(self.spread(x_n, mb), self.whole(s_next), whole, *args, self.spread(x0, mb))
        return self.take(x_r, mb), self.take(tau_r, mb)

    def text(self, ro: Rollout, idx: torch.Tensor) -> tuple[Text, Text]:
        """(cond, uncond) text of the rows ``idx``."""
        cond = (ro.cond[0][idx], ro.cond[1][idx])
        uncond = (self.uncond_1[0].expand(len(idx), -1, -1), self.uncond_1[1].expand(len(idx), -1))
        return cond, uncond

    def train_steps(self) -> list[int]:
        k = self.steps
        return torch.randperm(k, generator=self.gen, device=self.device)[
            : min(self.cfg.train_steps_per_iteration, k)
        ].tolist()

    def n_minibatches(self) -> int:
        return -(-self.cfg.prompts_per_iteration // self.layout.minibatch_groups)

    def whole(self, level: torch.Tensor) -> torch.Tensor:
        """A micro-step's per-row level (one value: one step index) for the rows of every process."""
        if self.layout.processes == 1:
            return level
        return level[:1].expand(len(level) * self.layout.processes)

    def n_micro(self) -> int:
        """Micro-steps of the fake and generator updates: minibatches x trained step indices."""
        return self.n_minibatches() * min(self.cfg.train_steps_per_iteration, self.steps)

    def t_max_reward(self) -> float:
        return self.cfg.t_max_surrogate if self.cfg.t_max_reward is None else self.cfg.t_max_reward

    def fake(self, ro: Rollout) -> float:
        """Gradients of the fake score's denoising score matching on the generator's steps; its mean loss."""
        cfg, sys_ = self.cfg, self.system
        total, count = 0.0, 0
        for mb in self.minibatches(ro):
            idx = mb.idx
            cond, _ = self.text(ro, idx)
            for j in self.train_steps():
                js = torch.full((len(idx),), j, device=self.device)
                if ro.x0_preds is not None:  # the generator is unchanged since the rollout: reuse its step
                    x0_hat, x_next = ro.x0_preds[j, idx], ro.states[j + 1, idx]
                    if sys_.solver != "euler":  # a DPM state is not the Euler step the fake score is noised from
                        x_next = sys_.euler_from_x0(ro.states[j, idx], x0_hat, js)
                else:
                    with torch.no_grad():
                        x0_hat, x_next = sys_.generator_step(ro.states[j, idx], js, cond)
                s_next = sys_.sigmas[js + 1]
                s_upper = sys_.sigmas[js] if cfg.interval == "separate" else torch.ones_like(s_next)
                shape = (len(self.whole(s_next)), *x_next.shape[1:])  # the whole minibatch's draws
                tau, noise = fake_draws(sys_, self.whole(s_next), self.whole(s_upper), shape, self.gen)
                tau, noise = self.take(tau, mb), self.take(noise, mb)
                loss = fake_loss(sys_, x_next, x0_hat, s_next, tau, noise, cond, cfg.fake_base_weight)
                (loss / self.n_micro()).backward()
                total, count = total + loss.item(), count + 1
        return average_stats({"loss_fake": total / max(count, 1)})["loss_fake"]

    def surrogate_step(self, ro: Rollout) -> dict[str, float]:
        """Gradients of one surrogate step on ``ro``: ``surrogate_draws`` group-shared (state, level, noise)
        draws per minibatch."""
        cfg, sys_, k_max = self.cfg, self.system, self.steps
        n_micro = self.n_minibatches() * cfg.surrogate_draws
        stats = {"loss_sur": 0.0, "clip_frac": 0.0}
        for mb in self.minibatches(ro):
            idx = mb.idx
            cond, _ = self.text(ro, idx)
            group = ro.group[idx]
            for _ in range(cfg.surrogate_draws):
                k, tau, xi = self.group_draws(ro, mb)
                x_k, weight = ro.states[k, idx], k.float() / k_max
                loss, info = self.surrogate.loss(x_k, sys_.sigmas[k], xi, tau, cond, ro.adv[idx], group, weight)
                (loss / n_micro).backward()
                stats["loss_sur"] += loss.item() / n_micro
                stats["clip_frac"] += info["clip_frac"] / n_micro
        return average_stats(stats)

    def generator(self, ro: Rollout) -> dict[str, float]:
        """Gradients of the generator's KL, CFG and surrogate-reward terms (reward term where ``j < trunc_steps``)."""
        cfg, sys_ = self.cfg, self.system
        sums: dict[str, float] = {}
        for mb in self.minibatches(ro):
            idx = mb.idx
            cond, uncond = self.text(ro, idx)
            group = ro.group[idx]
            gate = self.gate.row_mask(ro.tags, group)  # rows whose tag the surrogate is known to rank
            for j in self.train_steps():
                js = torch.full((len(idx),), j, device=self.device)
                x0_hat, x_next = sys_.generator_step(ro.states[j, idx], js, cond)  # x_next: the Euler step
                s_next = sys_.sigmas[js + 1]
                with torch.no_grad():
                    x_n = x_next.detach()
                    tau = self.take(draw_levels(self.whole(s_next), sys_.shift, self.gen), mb)
                    shape = (len(self.whole(s_next)), *x_n.shape[1:])  # the whole minibatch's noise
                    noise = self.take(torch.randn(shape, generator=self.gen, device=self.device), mb)
                    x_tau = sys_.diffuse(x_n, s_next, tau, noise)
                    x0_base_c, x0_base_u = sys_.x0_cond_uncond("base", x_tau, tau, cond, uncond)
                    x0_fake = sys_.x0("fake", x_tau, tau, cond)
                x_tau_r, tau_r = self.reward_point(x_n, s_next, group, mb, x0_hat.detach())
                if j < cfg.trunc_steps:
                    reward_dir, reward_norm = self.surrogate.reward_direction(x0_hat, x_tau_r, tau_r, cond, uncond)
                else:  # masked out below: skip the surrogate's forwards (the draws above keep the random stream)
                    reward_dir, reward_norm = torch.zeros_like(x0_hat), None
                loss, info = generator_rl_loss(
                    x0_hat,
                    x0_base_cond=x0_base_c,
                    x0_base_uncond=x0_base_u,
                    x0_fake=x0_fake,
                    reward_dir=reward_dir,
                    reward_norm=reward_norm,
                    reward_mask=gate * float(j < cfg.trunc_steps),
                    guidance_scale=cfg.cfg,
                    w_kl=cfg.w_kl,
                    w_cfg=cfg.w_cfg,
                    w_reward=cfg.w_reward,
                    huber_c=cfg.huber_c,
                )
                (loss / self.n_micro()).backward()
                for key, v in {"loss_gen": loss.item(), **info}.items():
                    sums[key] = sums.get(key, 0.0) + v / self.n_micro()
        return average_stats(sums)
