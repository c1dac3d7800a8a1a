"""The TDM-R1 trainer (docs/METHOD.md sec. 4): ``iteration()`` is one RL step, ``run()`` the resumable loop;
the parts live beside it in ``tdmr1.r1`` (docs/DESIGN_NOTES.md: backbones, randomness, several processes)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.config import to_dict
from tdmr1.devices import resolve_device
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import RewardError
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.models.lora.presets import lora_for_backbone
from tdmr1.r1 import scale
from tdmr1.r1.config import RLConfig, batch_layout, reward_queries
from tdmr1.r1.diagnostics import surrogate_rank
from tdmr1.r1.export import export_adapter, grid_images
from tdmr1.r1.gate import RewardGate
from tdmr1.r1.prompt_stream import PromptStream, prompt_pool, tag_stats
from tdmr1.r1.replay import ReplayState, WarmupState
from tdmr1.r1.rollout import Rollout, roll_out
from tdmr1.r1.surrogate import make_surrogate, surrogate_roles
from tdmr1.r1.surrogate.head_file import WARMUP_FILE, load_head, save_head
from tdmr1.r1.updates import RoleUpdates, make_optimizers, optimizer_step
from tdmr1.rewards.guard import SkipBudget
from tdmr1.rewards.registry import make_reward
from tdmr1.tdm.student import export_student, load_student_adapter
from tdmr1.tdm.system import FewStepSystem
from tdmr1.training import distributed as dist
from tdmr1.training.ema import TensorEMA
from tdmr1.training.loop import out_of_time, stops_cleanly, write_config
from tdmr1.training.progress import QuietLog, RunLogger
from tdmr1.training.quick_eval import quick_eval
from tdmr1.training.rng import GeneratorState
from tdmr1.training.state import has_training_state, load_training_state, prepare_run_dir, save_training_state
from tdmr1.training.stops import check_finite
from tdmr1.utils.grid import save_grid
from tdmr1.utils.plots import plot_reward_curve
from tdmr1.worlds import get_world


class TDMR1Trainer:
    """Owns the roles, optimisers, EMAs and the reward; ``run()`` trains, ``iteration()`` does one step."""

    def __init__(self, cfg: RLConfig, out_dir: str | Path, quiet: bool = False):
        self.cfg, self.out_dir, self.quiet = cfg, Path(out_dir), quiet
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # adapter initialisation
        spec = getattr(cfg, "backbone", None)
        self.scale = spec is not None and spec.path is not None  # a ScaleRLConfig naming a backbone folder
        self.device = dist.init_from_env(resolve_device(cfg.device))  # several processes: each its own GPU
        rank, processes = dist.rank_and_size()
        self.main = rank == 0
        self.layout = batch_layout(cfg, rank, processes)
        if self.scale:
            self.teacher_path = cfg.backbone.path
            self.model, self.sampling = scale.load_scale_backbone(cfg, self.device)
        else:
            adapter, student_config = load_student_adapter(cfg.init)
            self.teacher_path = cfg.teacher or student_config.get("teacher")
            sampling = student_config["sampling"]
            self.sampling = SamplingConfig(steps=sampling["steps"], cfg=1.0, sampler="euler", shift=sampling["shift"])
            self.model = EmbeddedT2I.load(self.teacher_path)
        main_lora = lora_for_backbone(cfg.lora, self.model)  # the backbone's default targets unless set
        lora = {"generator": main_lora, "fake": main_lora}
        lora |= {role: lora_for_backbone(cfg.lora_surrogate or cfg.lora, self.model) for role in surrogate_roles(cfg)}
        self.system = FewStepSystem(self.model, list(lora), lora, self.sampling.steps, self.sampling.shift, self.device)
        self.roles = self.system.roles
        if self.scale:
            scale.apply_memory_switches(self.model, cfg)  # before init_lora: the adapters must be fp32 then
            scale.init_generator_adapter(self.model, self.roles, cfg)
        else:
            self.roles.load_adapter_state("generator", adapter)
        self.surrogate = make_surrogate(self.system, cfg, processes)
        if cfg.surrogate_init:  # a warmed-up reward head from an earlier run (a resumed state overrides it)
            load_head(self.surrogate.head, cfg.surrogate_init, cfg)
        dist.RoleSync(self.roles).broadcast()  # every process starts from rank 0's adapters and reward head
        dist.broadcast_params(self.surrogate.parameters())
        self.world = get_world(cfg.world)
        if not self.scale:
            self.world.check_image_size(self.model.image_shape[1:], f"the model {self.teacher_path}")
        elif cfg.reward is None:  # the world's own reward judges the decoded images: they must be its size
            side = self.model.resolution
            self.world.check_image_size((side, side), f"the backbone {self.teacher_path}")
        self.reward = make_reward(cfg.reward, self.world, run_dir=self.out_dir)
        self.reward_parts: dict[str, float] = {}
        self.pool = prompt_pool(cfg, self.world)
        if self.scale and getattr(cfg, "cache_prompts", False):  # the pool, the grid, the empty prompt
            scale.cache_prompts(self.model, [md["prompt"] for md in self.pool] + list(self.world.grid_prompts()) + [""])
        self.stream = PromptStream(self.pool, cfg.prompt_stream, cfg.tag_weights)
        self.rng = np.random.default_rng(cfg.seed)  # prompt picks; every torch draw comes from self.gen
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.replay: deque[Rollout] = deque(maxlen=max(cfg.surrogate_replay, 1))
        self.warmup_state = WarmupState()
        self.opt = make_optimizers(cfg, self.system, self.surrogate)
        self.gen_ema = TensorEMA(self.roles.parameters("generator"), cfg.ema_decay)
        self.step = 0
        self.uncond_1 = self.system.encode([""])
        self.gate = RewardGate(cfg.reward_gate)
        self.update = RoleUpdates(
            cfg,
            self.system,
            self.surrogate,
            self.layout,
            self.gen,
            self.uncond_1,
            self.sampling.steps,
            self.device,
            self.gate,
        )
        self.val_suite = self.world.subsample_suite(self.world.benchmark_suite(), cfg.val_prompts_per_tag)
        self.grid_prompts = self.world.grid_prompts()

    # ---- one iteration -------------------------------------------------------------------------
    def iteration(self) -> dict[str, float]:
        """Rollout (with rewards and group advantages), fake-score update, surrogate steps, generator update,
        generator EMA; returns the iteration's logged numbers."""
        for opt in self.opt.values():
            opt.zero_grad(set_to_none=True)
        ro = self.rollout()
        stats = self._batch_stats(ro)
        if self.cfg.sur_rank_every and (self.step + 1) % self.cfg.sur_rank_every == 0:
            stats.update(self.surrogate_rank(ro))  # before the surrogate sees this batch
            self.gate.observe(stats, ro.tags)
        stats.update(self.gate.stats())
        stats["loss_fake"] = self.update.fake(ro)
        stats["grad_fake"] = optimizer_step(self.opt["fake"], self.cfg.grad_clip)
        stats.update(self.train_surrogate(ro))
        stats.update(self.update.generator(ro))
        stats["grad_gen"] = optimizer_step(self.opt["generator"], self.cfg.grad_clip)
        self.gen_ema.update()
        self.step += 1
        return stats

    def rollout(self, with_predictions: bool = True) -> Rollout:
        """This process's rows of m x G fresh images on the K-step path, their rewards and group advantages."""
        picks = self.stream.draw(self.rng, self.cfg.prompts_per_iteration)
        args = (self.system, self.reward, picks, self.cfg, self.layout, self.gen, self.step, with_predictions)
        ro, self.reward_parts = roll_out(*args)
        return ro

    def _batch_stats(self, ro: Rollout) -> dict[str, float]:
        reward = float(dist.mean_over_ranks(ro.rewards.mean()))
        stats: dict[str, float] = {"reward": reward, "correct": ro.correct, **self.reward_parts}
        stats.update(tag_stats(ro.tags, self.layout.gather_rows(ro.rewards), self.layout.gather_rows(ro.adv)))
        stats["reward_queries"] = float(reward_queries(self.cfg, self.step + 1))
        return stats

    def train_surrogate(self, ro: Rollout) -> dict[str, float]:
        """The surrogate's share of an iteration: ``surrogate_steps`` optimizer steps, the first on the fresh
        batch ``ro``, the others on rollouts drawn from the replay buffer of recent iterations."""
        cfg = self.cfg
        stats: dict[str, float] = {}
        for _ in range(cfg.surrogate_rollouts):  # labelled for the surrogate only
            with torch.no_grad():
                self.replay.append(self.rollout(with_predictions=False))
        for i in range(cfg.surrogate_steps):
            batch = ro if i == 0 or not cfg.surrogate_replay or not self.replay else self._replayed()
            step_stats = self.update.surrogate_step(batch)
            step_stats["grad_sur"] = optimizer_step(self.opt["surrogate"], cfg.grad_clip)
            self.surrogate.after_step(self.step)
            for key, v in step_stats.items():
                stats[key] = stats.get(key, 0.0) + v / cfg.surrogate_steps
        if cfg.surrogate_replay:
            self.replay.append(ro.without_predictions())
        return stats

    def warm_up_surrogate(self, log: Any) -> dict[str, float]:
        """Before iteration 1: ``surrogate_warmup`` labelled rollout batches of the initial generator into
        the replay buffer, then ``surrogate_warmup_steps`` surrogate steps on batches drawn from it."""
        cfg, t0 = self.cfg, time.time()
        for i in range(cfg.surrogate_warmup):
            with torch.no_grad():
                self.replay.append(self.rollout(with_predictions=False))
            if (i + 1) % 25 == 0 or i + 1 == cfg.surrogate_warmup:
                log.info(
                    f"surrogate warm-up: {i + 1}/{cfg.surrogate_warmup} batches labelled ({time.time() - t0:.0f} s)"
                )
        held = self.replay.pop()  # the last batch: how well the warmed-up surrogate ranks unseen images
        for i in range(cfg.surrogate_warmup_steps):
            self.update.surrogate_step(self._replayed())
            optimizer_step(self.opt["surrogate"], cfg.grad_clip)
            self.surrogate.after_step(self.step)
            if (i + 1) % 250 == 0 or i + 1 == cfg.surrogate_warmup_steps:
                log.info(f"surrogate warm-up: step {i + 1}/{cfg.surrogate_warmup_steps} ({time.time() - t0:.0f} s)")
        self.replay.append(held)
        if self.main and hasattr(self.surrogate, "head"):  # reusable by other runs: surrogate_init
            save_head(
                self.surrogate.head, self.out_dir / WARMUP_FILE, self.cfg, {"warmup_batches": cfg.surrogate_warmup}
            )
        ranks = self.surrogate_rank(held)
        self.gate.observe(ranks, held.tags)
        out = {f"warmup/{k}": v for k, v in ranks.items()}
        out["warmup/seconds"] = time.time() - t0
        self.warmup_state.done = True
        return out

    def _replayed(self) -> Rollout:
        pick = torch.randint(len(self.replay), (1,), generator=self.gen, device=self.device)
        return self.replay[int(pick)]

    def surrogate_rank(self, ro: Rollout) -> dict[str, float]:
        """The ``sur_rank`` diagnostic of ``ro`` (:func:`tdmr1.r1.diagnostics.surrogate_rank`)."""
        return surrogate_rank(self.surrogate, ro, self.layout, self.cfg, self.step, self.device)

    # ---- evaluation, pictures, checkpoints -----------------------------------------------------
    def validate(self) -> dict[str, float]:
        """A quick benchmark of the EMA generator on rank 0 (nothing on the others and on scale runs: the
        worlds' benchmarks sample with the embedded sampler)."""
        if self.scale or not self.main:
            return {}
        self.gen_ema.swap()
        try:
            with self.roles.use("generator"):
                return quick_eval(self.model, self.world, self.val_suite, self.sampling, self.cfg.val_images_per_prompt)
        finally:
            self.gen_ema.swap()

    def grid(self, name: str) -> None:
        images = grid_images(self.system, self.gen_ema, self.grid_prompts, self.sampling, self.scale)
        save_grid(images, self.out_dir / "samples" / f"{name}.png", labels=self.grid_prompts)

    def export(self, directory: Path) -> None:
        """The generator (EMA weights) as a sampling checkpoint; on scale runs its adapter."""
        meta = {"rl_iterations": self.step, "rl_reward": getattr(self.reward, "name", "reward")}
        if self.scale:
            export_adapter(self.system, self.gen_ema, directory, self.cfg, meta)
        else:
            export_student(self.system, self.gen_ema, directory, str(self.teacher_path), self.sampling, meta)

    def _state_parts(self, replay: deque | None = None) -> tuple[dict[str, Any], dict[str, torch.optim.Optimizer]]:
        denoiser = scale.AdapterState(self.model.denoiser) if self.scale else self.model.denoiser
        modules = {"denoiser": denoiser, "gen_ema": self.gen_ema, **self.surrogate.state_modules()}
        replay_state = ReplayState(self.replay if replay is None else replay, self.layout)
        modules |= {"torch_gen": GeneratorState(self.gen), "replay": replay_state, "warmup": self.warmup_state}
        if self.cfg.reward_gate is not None:  # only then: states written before the gate existed still resume
            modules["reward_gate"] = self.gate
        return modules, self.opt

    def save(self) -> None:
        """Rank 0 writes (the replay buffer gathered into whole batches first); the others wait."""
        replay = deque(ro.gathered(self.layout) for ro in self.replay)
        if self.main:
            self.export(self.out_dir / "model")  # first: the exported model never lags the state
            modules, opts = self._state_parts(replay)
            save_training_state(self.out_dir, self.step, modules, opts, self.rng)
        dist.barrier()

    def resume(self) -> bool:
        if not has_training_state(self.out_dir):
            return False
        modules, opts = self._state_parts()
        self.step, _ = load_training_state(self.out_dir, modules, opts, self.rng)
        return True

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = True) -> Path:
        cfg = self.cfg
        has_state = dist.main_first(lambda: prepare_run_dir(self.out_dir, resume, to_dict(cfg)))
        if not (has_state and self.resume()) and self.main:
            self.grid("before")
        log: RunLogger | QuietLog = QuietLog()
        if self.main:
            write_config(self.out_dir, cfg)
            log = RunLogger(
                self.out_dir, total=cfg.iterations, start=self.step, desc=f"TDM-R1 {cfg.world}", quiet=self.quiet
            )
        t0 = time.time()
        skips = SkipBudget(cfg.max_skipped_batches)
        with stops_cleanly(log, "TDM-R1", "iteration", lambda: self.step, cfg.checkpoint_every):
            if cfg.surrogate_warmup and not self.warmup_state.done:
                log.scalars(0, self.warm_up_surrogate(log))
                self.save()
            if self.step == 0 and cfg.val_every:
                log.scalars(0, {f"val/{k}": v for k, v in self.validate().items()})
            while self.step < cfg.iterations:
                if out_of_time(cfg, t0, log, f"iteration {self.step}", agree=dist.any_rank):
                    break
                try:
                    stats = self.iteration()
                except RewardError as exc:
                    if not cfg.skip_bad_reward_batches:
                        log.info(f"stopping: {exc}; last checkpoint (iteration {self.step}) is intact")
                        raise
                    skips.skip(exc)
                    log.info(f"skipped batch: {exc}")
                    continue
                skips.ok()
                check_finite({k: v for k, v in stats.items() if k.startswith("loss")}, "iteration", self.step)
                if cfg.val_every and self.step % cfg.val_every == 0:
                    stats.update({f"val/{k}": v for k, v in self.validate().items()})
                log.step(self.step, stats, every=cfg.log_every)
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                if cfg.snapshot_every and self.step % cfg.snapshot_every == 0 and self.main:
                    self.export(self.out_dir / "snapshots" / f"iter_{self.step:05d}")
            if cfg.val_every and self.step % cfg.val_every:
                log.scalars(self.step, {f"val/{k}": v for k, v in self.validate().items()})
        self.save()
        if self.main:
            self.grid("after")
            plot_reward_curve(self.out_dir, self.out_dir / "reward_curve.png")
        log.info(
            f"TDM-R1: {self.step} iterations in {time.time() - t0:.0f} s ({skips.total} skipped batches); "
            f"model at {self.out_dir / 'model'}"
        )
        return self.out_dir / "model"
