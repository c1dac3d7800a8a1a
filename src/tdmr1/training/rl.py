"""TDM-R1 trainer (METHOD.md sec. 4): rollouts on the deterministic K-step path, black-box reward, group
advantages, then per iteration, in order, the fake-score, surrogate-reward and generator updates
(gradients accumulated over minibatches of whole groups, one optimizer step per role)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.config import to_dict
from tdmr1.devices import resolve_device
from tdmr1.errors import RewardError
from tdmr1.generate import SamplingConfig, generate_images, to_uint8
from tdmr1.losses import per_sample_mean
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.rewards.guard import call_reward
from tdmr1.rewards.registry import make_reward
from tdmr1.rl_losses import generator_rl_loss, group_advantages, surrogate_loss, surrogate_target
from tdmr1.training.distill import fake_update
from tdmr1.training.ema import TensorEMA
from tdmr1.training.progress import RunLogger
from tdmr1.training.quick_eval import quick_eval
from tdmr1.training.rl_config import RLConfig
from tdmr1.training.state import has_training_state, load_training_state, save_training_state
from tdmr1.training.student import export_student, load_student_adapter
from tdmr1.training.surrogate_rank import clean_margin, pearson
from tdmr1.training.system import FewStepSystem
from tdmr1.utils.grid import save_grid
from tdmr1.utils.plots import plot_reward_curve
from tdmr1.worlds import get_world

ROLES = ["generator", "fake", "surrogate", "surrogate_old"]


@dataclass
class Rollout:
    """One iteration's data: trajectories of m x G images, their rewards and advantages."""

    states: torch.Tensor  # [K+1, N, C, H, W]
    cond: tuple[torch.Tensor, torch.Tensor]
    group: torch.Tensor  # [N] prompt-group id
    rewards: torch.Tensor  # [N]
    adv: torch.Tensor  # [N]
    correct: float


class TDMR1Trainer:
    """Owns the roles, optimisers, EMAs and the reward; ``run()`` trains, ``iteration()`` does one step."""

    def __init__(self, cfg: RLConfig, out_dir: str | Path, quiet: bool = False):
        self.cfg, self.out_dir, self.quiet = cfg, Path(out_dir), quiet
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        adapter, student_config = load_student_adapter(cfg.init)
        self.teacher_path = cfg.teacher or student_config.get("teacher")
        sampling = student_config["sampling"]
        self.sampling = SamplingConfig(steps=sampling["steps"], cfg=1.0, sampler="euler", shift=sampling["shift"])
        self.device = resolve_device(cfg.device)
        self.model = EmbeddedT2I.load(self.teacher_path)
        self.system = FewStepSystem(self.model, ROLES, cfg.lora, self.sampling.steps, self.sampling.shift, self.device)
        self.roles = self.system.roles
        self.roles.load_adapter_state("generator", adapter)
        self.world = get_world(cfg.world)
        self.reward = make_reward(cfg.reward, self.world)
        self.pool = self.world.training_prompts()
        self.rng = np.random.default_rng(cfg.seed)

        def adamw(role: str, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.roles.parameters(role), lr=lr, betas=betas, weight_decay=cfg.weight_decay)

        self.opt = {
            "fake": adamw("fake", cfg.lr_fake, cfg.betas_fake),
            "surrogate": adamw("surrogate", cfg.lr_surrogate, cfg.betas_surrogate),
            "generator": adamw("generator", cfg.lr_generator, cfg.betas_generator),
        }
        self.gen_ema = TensorEMA(self.roles.parameters("generator"), cfg.ema_decay)
        self.ref_role = "base" if cfg.reference == "base" else "surrogate_old"
        self.step = 0
        self.uncond_1 = self.system.encode([""])
        self.val_suite = self.world.subsample_suite(self.world.benchmark_suite(), cfg.val_prompts_per_tag)
        self.grid_prompts = self.world.grid_prompts()

    # ---- state ---------------------------------------------------------------------------------
    def _state_parts(self) -> tuple[dict[str, Any], dict[str, torch.optim.Optimizer]]:
        return {"denoiser": self.model.denoiser, "gen_ema": self.gen_ema}, self.opt

    def save(self) -> None:
        modules, opts = self._state_parts()
        save_training_state(self.out_dir, self.step, modules, opts, self.rng)
        export_student(
            self.system,
            self.gen_ema,
            self.out_dir / "model",
            str(self.teacher_path),
            self.sampling,
            {"rl_iterations": self.step, "rl_reward": getattr(self.reward, "name", "reward")},
        )

    def resume(self) -> bool:
        if not has_training_state(self.out_dir):
            return False
        modules, opts = self._state_parts()
        self.step, _ = load_training_state(self.out_dir, modules, opts, self.rng)
        return True

    # ---- rollout -------------------------------------------------------------------------------
    def rollout(self) -> Rollout:
        cfg = self.cfg
        picks = [self.pool[i] for i in self.rng.integers(0, len(self.pool), cfg.prompts_per_iteration)]
        metadata = [md for md in picks for _ in range(cfg.group_size)]
        prompts = [md["prompt"] for md in metadata]
        group = torch.arange(cfg.prompts_per_iteration, device=self.device).repeat_interleave(cfg.group_size)
        cond = self.system.encode(prompts)
        traj = self.system.rollout(cond, self.system.randn(len(prompts)))
        out = call_reward(self.reward, to_uint8(traj.final), prompts, metadata, cfg.reward_timeout_s)
        rewards = torch.from_numpy(out.scores).float().to(self.device)
        adv = group_advantages(rewards, group, cfg.adv_eps, cfg.adv_clip)
        correct = float(np.mean(out.info["correct"])) if "correct" in out.info else float("nan")
        return Rollout(traj.states, cond, group, rewards, adv, correct)

    def minibatches(self, ro: Rollout):
        """Index sets of whole groups, ``minibatch_groups`` groups each, in a random order."""
        cfg = self.cfg
        order = torch.randperm(cfg.prompts_per_iteration, device=self.device)
        for start in range(0, cfg.prompts_per_iteration, cfg.minibatch_groups):
            groups = order[start : start + cfg.minibatch_groups]
            yield torch.cat([torch.nonzero(ro.group == g).flatten() for g in groups])

    def _text(self, ro: Rollout, idx: torch.Tensor):
        cond = (ro.cond[0][idx], ro.cond[1][idx])
        uncond = (self.uncond_1[0].expand(len(idx), -1, -1), self.uncond_1[1].expand(len(idx), -1))
        return cond, uncond

    def _per_group(self, values: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Broadcast one value per group (rows of ``values``, in group-id order) to the group's samples."""
        _, inverse = torch.unique(group, return_inverse=True)
        return values[inverse]

    def _train_steps(self) -> torch.Tensor:
        k = self.sampling.steps
        return torch.randperm(k)[: min(self.cfg.train_steps_per_iteration, k)].tolist()

    # ---- the three updates ---------------------------------------------------------------------
    def update_fake(self, ro: Rollout) -> float:
        cfg, sys_ = self.cfg, self.system
        total, count = 0.0, 0
        for idx in self.minibatches(ro):
            cond, _ = self._text(ro, idx)
            for j in self._train_steps():
                js = torch.full((len(idx),), int(j), device=self.device)
                with torch.no_grad():
                    x0_hat, x_next = sys_.generator_step(ro.states[j, idx], js, cond)
                s_next = sys_.sigmas[js + 1]
                s_upper = sys_.sigmas[js] if cfg.interval == "separate" else torch.ones_like(s_next)
                loss = fake_update(sys_, x_next, x0_hat, s_next, s_upper, cond, cfg.fake_base_weight)
                (loss / self._n_micro()).backward()
                total, count = total + loss.item(), count + 1
        return total / max(count, 1)

    def update_surrogate(self, ro: Rollout) -> dict[str, float]:
        cfg, sys_, k_max = self.cfg, self.system, self.sampling.steps
        stats: dict[str, float] = {"loss_sur": 0.0, "clip_frac": 0.0}
        count = 0
        margin_sum = torch.zeros_like(ro.adv)  # held-out check: this batch is new to the surrogate
        for idx in self.minibatches(ro):
            cond, _ = self._text(ro, idx)
            group, adv = ro.group[idx], ro.adv[idx]
            n_groups = len(torch.unique(group))
            for _ in range(cfg.train_steps_per_iteration):
                probs = torch.arange(1, k_max + 1, dtype=torch.float, device=self.device)
                k_g = torch.multinomial(probs / probs.sum(), n_groups, replacement=True) + 1  # P(k) ~ k
                k = self._per_group(k_g, group)
                s_k = sys_.sigmas[k]
                low_g = torch.clamp(sys_.sigmas[k_g], min=cfg.t_min_surrogate)
                tau = self._per_group(sys_.sample_levels(low_g), group)
                xi = self._per_group(sys_.randn(n_groups), group)
                x_k = ro.states[k, idx]
                x_tau, v_star = surrogate_target(x_k, s_k, xi, tau)
                v_sur = sys_.velocity("surrogate", x_tau, tau, cond)
                with torch.no_grad():
                    v_base = sys_.velocity("base", x_tau, tau, cond)
                    v_old = sys_.velocity("surrogate_old", x_tau, tau, cond)
                    v_ref = v_base if self.ref_role == "base" else v_old
                d = per_sample_mean((v_star - v_sur).pow(2))
                d_ref = per_sample_mean((v_star - v_ref).pow(2))
                margin_sum[idx] += (d_ref - d).detach()
                loss, info = surrogate_loss(
                    d,
                    d_ref,
                    adv,
                    group,
                    cfg.beta,
                    step_weight=k.float() / k_max,
                    d_old=per_sample_mean((v_star - v_old).pow(2)),
                    ppo_clip=cfg.ppo_clip,
                    anchor=per_sample_mean((v_sur - v_base).pow(2)),
                    d_base=per_sample_mean((v_star - v_base).pow(2)),
                    anchor_limit=cfg.anchor_limit,
                    anchor_weight=cfg.anchor_weight,
                )
                (loss / self._n_micro()).backward()
                stats["loss_sur"] += loss.item()
                stats["clip_frac"] += info["clip_frac"]
                count += 1
        out = {k: v / max(count, 1) for k, v in stats.items()}
        out["sur_corr"] = pearson(ro.adv, margin_sum, ro.group) if count else float("nan")  # margins summed over draws
        return out

    def update_generator(self, ro: Rollout) -> dict[str, float]:
        cfg, sys_ = self.cfg, self.system
        sums: dict[str, float] = {}
        count = 0
        for idx in self.minibatches(ro):
            cond, uncond = self._text(ro, idx)
            group = ro.group[idx]
            n_groups = len(torch.unique(group))
            for j in self._train_steps():
                js = torch.full((len(idx),), int(j), device=self.device)
                x0_hat, x_next = sys_.generator_step(ro.states[j, idx], js, cond)
                s_next = sys_.sigmas[js + 1]
                with torch.no_grad():
                    x_n = x_next.detach()
                    tau = sys_.sample_levels(s_next)
                    x_tau = sys_.diffuse(x_n, s_next, tau, torch.randn_like(x_n))
                    x0_base_c, x0_base_u = sys_.x0_cond_uncond("base", x_tau, tau, cond, uncond)
                    x0_fake = sys_.x0("fake", x_tau, tau, cond)
                    low_r = torch.clamp(sys_.sigmas[int(j) + 1], min=cfg.t_min_reward).expand(n_groups)
                    tau_r = self._per_group(sys_.sample_levels(low_r.clone()), group)
                    xi_r = self._per_group(sys_.randn(n_groups), group)
                    x_tau_r = sys_.diffuse(x_n, s_next, tau_r, xi_r)
                    if cfg.surrogate_cfg == 1.0:
                        x0_sur_cfg = sys_.x0("surrogate", x_tau_r, tau_r, cond)
                    else:
                        x0_sur_c, x0_sur_u = sys_.x0_cond_uncond("surrogate", x_tau_r, tau_r, cond, uncond)
                        x0_sur_cfg = x0_sur_u + cfg.surrogate_cfg * (x0_sur_c - x0_sur_u)
                    x0_ref = sys_.x0(self.ref_role, x_tau_r, tau_r, cond)
                mask = torch.full((len(idx),), float(int(j) < cfg.trunc_steps), device=self.device)
                loss, info = generator_rl_loss(
                    x0_hat,
                    x0_base_c,
                    x0_base_u,
                    x0_fake,
                    x0_sur_cfg,
                    x0_ref,
                    cfg.cfg,
                    mask,
                    cfg.w_kl,
                    cfg.w_cfg,
                    cfg.w_reward,
                    cfg.huber_c,
                )
                (loss / self._n_micro()).backward()
                for key, v in {"loss_gen": loss.item(), **info}.items():
                    sums[key] = sums.get(key, 0.0) + v
                count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

    def train_surrogate(self, ro: Rollout) -> dict[str, float]:
        """The surrogate's share of an iteration: its update, optimizer step and the lagging EMA copy."""
        cfg = self.cfg
        stats = self.update_surrogate(ro)
        stats["grad_sur"] = self._step("surrogate")
        decay = min(cfg.surrogate_ema_max, cfg.surrogate_ema_start + cfg.surrogate_ema_rate * self.step)
        self.roles.lerp_into("surrogate", "surrogate_old", decay)
        return stats

    def surrogate_rank(self, ro: Rollout) -> float:
        """Within-prompt correlation of ``ro``'s advantages with the surrogate's clean-state margin, averaged
        over ``sur_rank_draws`` draws from a generator of its own (training randomness is unchanged)."""
        cfg = self.cfg
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + self.step)
        margin = clean_margin(
            self.system, ro.states[-1], ro.cond, ro.group, self.ref_role, cfg.t_min_surrogate, cfg.sur_rank_draws, gen
        )
        return pearson(ro.adv, margin, ro.group)

    def _n_micro(self) -> int:
        return (self.cfg.prompts_per_iteration // self.cfg.minibatch_groups) * self.cfg.train_steps_per_iteration

    def _step(self, role: str) -> float:
        params = self.roles.parameters(role)
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.opt[role].step()
        self.opt[role].zero_grad(set_to_none=True)
        return float(norm)

    # ---- one iteration -------------------------------------------------------------------------
    def iteration(self) -> dict[str, float]:
        for opt in self.opt.values():
            opt.zero_grad(set_to_none=True)
        ro = self.rollout()
        stats: dict[str, float] = {"reward": ro.rewards.mean().item(), "correct": ro.correct}
        if self.cfg.sur_rank_every and (self.step + 1) % self.cfg.sur_rank_every == 0:
            stats["sur_rank"] = self.surrogate_rank(ro)  # before the surrogate sees this batch
        stats["loss_fake"] = self.update_fake(ro)
        stats["grad_fake"] = self._step("fake")
        stats.update(self.train_surrogate(ro))
        stats.update(self.update_generator(ro))
        stats["grad_gen"] = self._step("generator")
        self.gen_ema.update()
        self.step += 1
        return stats

    # ---- evaluation and pictures ---------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        self.gen_ema.swap()
        try:
            with self.roles.use("generator"):
                return quick_eval(self.model, self.world, self.val_suite, self.sampling, self.cfg.val_images_per_prompt)
        finally:
            self.gen_ema.swap()

    def grid(self, name: str) -> None:
        self.gen_ema.swap()
        try:
            with self.roles.use("generator"), torch.no_grad():
                seeds = [1000 + i for i in range(len(self.grid_prompts))]
                imgs = generate_images(self.model, self.grid_prompts, seeds, self.sampling)
        finally:
            self.gen_ema.swap()
        save_grid(imgs, self.out_dir / "samples" / f"{name}.png", labels=self.grid_prompts)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = True) -> Path:
        cfg = self.cfg
        if not (resume and self.resume()):
            self.grid("before")
        (self.out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
        log = RunLogger(
            self.out_dir, total=cfg.iterations, start=self.step, desc=f"TDM-R1 {cfg.world}", quiet=self.quiet
        )
        t0 = time.time()
        skipped = 0
        try:
            if self.step == 0 and cfg.val_every:
                log.scalars(0, {f"val/{k}": v for k, v in self.validate().items()})
            while self.step < cfg.iterations:
                if cfg.max_minutes is not None and time.time() - t0 > 60 * cfg.max_minutes:
                    log.info(f"time budget of {cfg.max_minutes} min reached at iteration {self.step}")
                    break
                try:
                    stats = self.iteration()
                except RewardError as exc:
                    if not cfg.skip_bad_reward_batches:
                        log.info(f"stopping: {exc}; last checkpoint (iteration {self.step}) is intact")
                        raise
                    skipped += 1
                    log.info(f"skipped batch: {exc}")
                    continue
                if cfg.val_every and self.step % cfg.val_every == 0:
                    stats.update({f"val/{k}": v for k, v in self.validate().items()})
                log.step(self.step, stats, every=cfg.log_every)
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
            if cfg.val_every and self.step % cfg.val_every:
                log.scalars(self.step, {f"val/{k}": v for k, v in self.validate().items()})
        finally:
            log.close()
        self.save()
        self.grid("after")
        plot_reward_curve(self.out_dir, self.out_dir / "reward_curve.png")
        log.info(
            f"TDM-R1: {self.step} iterations in {time.time() - t0:.0f} s ({skipped} skipped batches); "
            f"model at {self.out_dir / 'model'}"
        )
        return self.out_dir / "model"
