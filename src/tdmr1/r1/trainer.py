"""TDM-R1 trainer (docs/METHOD.md): rollouts on the deterministic K-step path, black-box reward, group
advantages, then per iteration, in order, the fake-score, surrogate-reward and generator updates
(gradients accumulated over minibatches of whole groups, one optimizer step per role).

The backbone is the embedded model of ``init``'s teacher, or, with a :class:`ScaleRLConfig` whose
``backbone.path`` is set, a scale-path backbone (SD3.5, Z-Image) loaded by
:func:`tdmr1.models.registry.load_backbone`: its explicit schedule, the authors' LoRA targets (unless
``lora.target_modules`` is set), fresh adapters or ``init_lora`` in the generator, latents decoded for the
reward. Scale runs export the generator adapter (``model/adapter.safetensors``, peft names) instead of a
merged model and skip validation (the worlds' benchmarks sample with the embedded sampler).

Every random draw of training comes from ``self.gen`` (torch) and ``self.rng`` (numpy, prompt picks),
both saved in the run state, so a resumed run continues exactly as an uninterrupted one.

Several processes (``accelerate launch`` / ``torchrun``, or a process group made by the caller; see
:mod:`tdmr1.training.distributed`): every process holds G / W images of every prompt group
(:class:`BatchLayout`), draws what a single process would draw for the whole batch and keeps its rows,
gathers rewards before the advantages, averages the Bradley-Terry group sums, the logged numbers and,
before each optimizer step, every role's gradients (the reward head's too); rank 0 writes checkpoints,
logs and samples, every rank resumes from them. The per-process micro-batch is ``minibatch_groups`` x G /
W, or, on a scale config that sets it, ``per_device_batch`` (then minibatch_groups = per_device_batch x W /
G, with one process too: :meth:`ScaleRLConfig.layout`). With one process nothing of this runs.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmr1.config import to_dict
from tdmr1.devices import resolve_device
from tdmr1.diffusion.flow import draw_levels
from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.errors import ConfigError, RewardError
from tdmr1.models.checkpoints import ADAPTER_FILE
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.models.lora.presets import lora_for_backbone
from tdmr1.models.registry import images_of
from tdmr1.pipelines.generate import generate_images
from tdmr1.r1.config import RLConfig
from tdmr1.r1.diagnostics import clean_margin, pearson
from tdmr1.r1.draws import draw_surrogate_points, group_noise, reward_point
from tdmr1.r1.losses import generator_rl_loss, group_advantages
from tdmr1.r1.prompt_stream import PromptStream, tag_rows, tag_stats
from tdmr1.r1.surrogate import Surrogate
from tdmr1.r1.surrogate.explicit import ExplicitSurrogate
from tdmr1.r1.surrogate.implicit import ImplicitSurrogate
from tdmr1.rewards.composite import reward_parts
from tdmr1.rewards.guard import SkipBudget, call_reward
from tdmr1.rewards.registry import make_reward
from tdmr1.tdm.student import export_student, load_student_adapter
from tdmr1.tdm.system import FewStepSystem
from tdmr1.tdm.system_losses import fake_draws, fake_loss
from tdmr1.training.distributed import (
    BatchLayout,
    RoleSync,
    all_reduce_grads,
    any_rank,
    average_stats,
    barrier,
    broadcast_params,
    init_from_env,
    main_first,
    mean_over_ranks,
    rank_and_size,
)
from tdmr1.training.ema import TensorEMA
from tdmr1.training.progress import RunLogger
from tdmr1.training.quick_eval import quick_eval
from tdmr1.training.state import has_training_state, load_training_state, prepare_run_dir, save_training_state
from tdmr1.training.stops import check_finite, interrupted
from tdmr1.utils.grid import save_grid
from tdmr1.utils.plots import plot_reward_curve
from tdmr1.worlds import get_world


@dataclass
class Rollout:
    """One iteration's data: trajectories of m x G images, their rewards and advantages."""

    states: torch.Tensor  # [K+1, N, C, H, W]
    cond: tuple[torch.Tensor, torch.Tensor]
    group: torch.Tensor  # [N] prompt-group id
    rewards: torch.Tensor  # [N]
    adv: torch.Tensor  # [N]
    correct: float
    #: [K, N, C, H, W] the generator's data prediction at each state, from the rollout itself (the fake
    #: update reuses it instead of running the unchanged generator again); None in replayed batches
    x0_preds: torch.Tensor | None = None
    #: the tag of each prompt group (group id order; whole batch), for per-tag logs
    tags: tuple[str, ...] = ()

    def _rows(self, take: Callable[..., torch.Tensor]) -> Rollout:
        """The batch with ``take(tensor, dim=...)`` applied to every per-image tensor (images are dim 1 of
        the stacked states and predictions, dim 0 elsewhere)."""
        return Rollout(
            take(self.states, dim=1),
            (take(self.cond[0]), take(self.cond[1])),
            *(take(t) for t in (self.group, self.rewards, self.adv)),
            self.correct,
            None if self.x0_preds is None else take(self.x0_preds, dim=1),
            self.tags,
        )

    def gathered(self, layout: BatchLayout) -> Rollout:
        """The whole batch from every process's rows (identity for one process)."""
        return self._rows(layout.gather_rows)

    def mine(self, layout: BatchLayout) -> Rollout:
        """This process's rows of a whole batch (identity for one process)."""
        return self._rows(layout.mine)

    def without_predictions(self) -> Rollout:
        """The same batch without ``x0_preds`` (what the replay buffer keeps: half the memory)."""
        return replace(self, x0_preds=None)


class _GeneratorState:
    """A torch.Generator seen as a module with a state dict (for the run state)."""

    def __init__(self, gen: torch.Generator):
        self.gen = gen

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["state"])


class _AdapterState:
    """The LoRA weights of a scale-path denoiser (every role), without its frozen base weights."""

    def __init__(self, denoiser: torch.nn.Module):
        self.denoiser = denoiser

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.denoiser.state_dict().items() if "lora_" in k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        result = self.denoiser.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            from tdmr1.errors import CheckpointError

            raise CheckpointError(
                f"run state does not fit the adapters (missing {missing[:2]}, unexpected {result.unexpected_keys[:2]})"
            )


class _ReplayState:
    """The surrogate's replay buffer of recent rollouts, saved with the run (whole batches: each process
    keeps its rows when it loads them)."""

    def __init__(self, buffer: deque, layout: BatchLayout):
        self.buffer, self.layout = buffer, layout

    def state_dict(self) -> dict[str, Any]:
        return {"rollouts": [vars(ro) for ro in self.buffer]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.clear()
        self.buffer.extend(Rollout(**ro).mine(self.layout) for ro in state["rollouts"])


class _WarmupState:
    """Whether the surrogate's warm-up ran (saved with the run: a resumed run does not repeat it)."""

    def __init__(self) -> None:
        self.done = False

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = bool(state["done"])


class _QuietLog:
    """What processes other than rank 0 log: nothing."""

    def step(self, *args: Any, **kwargs: Any) -> None:
        pass

    scalars = image = info = close = step


def batch_layout(cfg: RLConfig, rank: int, processes: int) -> BatchLayout:
    """How an iteration's images spread over ``processes`` (ConfigError with the reason when they do not):
    a scale config's own :meth:`ScaleRLConfig.layout` (one source of truth, any number of processes), else
    micro-batches of ``minibatch_groups`` groups."""
    layout = getattr(cfg, "layout", None)
    if layout is not None:
        return layout(processes, rank)
    return BatchLayout.of_minibatches(cfg.group_size, cfg.prompts_per_iteration, processes, cfg.minibatch_groups, rank)


def _make_surrogate(system: FewStepSystem, model: EmbeddedT2I, cfg: RLConfig, processes: int) -> Surrogate:
    group_reduce = mean_over_ranks if processes > 1 else None  # each process holds a share of every group
    if cfg.surrogate == "implicit":
        return ImplicitSurrogate(system, cfg, group_reduce)
    denoiser = model.denoiser
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
        self.device = init_from_env(resolve_device(cfg.device))  # several processes: each its own GPU
        rank, processes = rank_and_size()
        self.main = rank == 0
        self.layout = batch_layout(cfg, rank, processes)
        if self.scale:
            self._load_scale_backbone(cfg)
        else:
            adapter, student_config = load_student_adapter(cfg.init)
            self.teacher_path = cfg.teacher or student_config.get("teacher")
            sampling = student_config["sampling"]
            self.sampling = SamplingConfig(steps=sampling["steps"], cfg=1.0, sampler="euler", shift=sampling["shift"])
            self.model = EmbeddedT2I.load(self.teacher_path)
        sur_roles = ImplicitSurrogate.roles if cfg.surrogate == "implicit" else ExplicitSurrogate.roles
        main_lora = lora_for_backbone(cfg.lora, self.model)  # the backbone's default targets unless set
        lora = {"generator": main_lora, "fake": main_lora}
        lora.update({role: lora_for_backbone(cfg.lora_surrogate or cfg.lora, self.model) for role in sur_roles})
        self.system = FewStepSystem(self.model, list(lora), lora, self.sampling.steps, self.sampling.shift, self.device)
        self.roles = self.system.roles
        if self.scale:
            self._scale_memory(cfg)  # before init_lora: the adapters must be fp32 when it is copied in
            self._init_scale_generator(cfg)
        else:
            self.roles.load_adapter_state("generator", adapter)
        self.surrogate = _make_surrogate(self.system, self.model, cfg, processes)
        RoleSync(self.roles).broadcast()  # every process starts from rank 0's adapters and reward head
        broadcast_params(self.surrogate.parameters())
        self.world = get_world(cfg.world)
        if not self.scale:
            self.world.check_image_size(self.model.image_shape[1:], f"the model {self.teacher_path}")
        elif cfg.reward is None:  # the world's own reward judges the decoded images: they must be its size
            side = self.model.resolution
            self.world.check_image_size((side, side), f"the backbone {self.teacher_path}")
        self.reward = make_reward(cfg.reward, self.world, run_dir=self.out_dir)
        self.reward_parts: dict[str, float] = {}
        self.pool = self._prompt_pool(cfg)
        if self.scale and getattr(cfg, "cache_prompts", False):
            self._cache_prompts()
        self.stream = PromptStream(self.pool, cfg.prompt_stream, cfg.tag_weights)
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.replay: deque[Rollout] = deque(maxlen=max(cfg.surrogate_replay, 1))
        self.warmup_state = _WarmupState()

        def adamw(params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
            return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=cfg.weight_decay)

        lr_sur = cfg.lr_surrogate if cfg.surrogate == "implicit" else cfg.lr_head
        self.opt = {
            "fake": adamw(self.roles.parameters("fake"), cfg.lr_fake, cfg.betas_fake),
            "surrogate": adamw(self.surrogate.parameters(), lr_sur, cfg.betas_surrogate),
            "generator": adamw(self.roles.parameters("generator"), cfg.lr_generator, cfg.betas_generator),
        }
        self.gen_ema = TensorEMA(self.roles.parameters("generator"), cfg.ema_decay)
        self.step = 0
        self.uncond_1 = self.system.encode([""])
        self.val_suite = self.world.subsample_suite(self.world.benchmark_suite(), cfg.val_prompts_per_tag)
        self.grid_prompts = self.world.grid_prompts()

    # ---- scale-path backbones -------------------------------------------------------------------
    def _load_scale_backbone(self, cfg: RLConfig) -> None:
        """The backbone of ``cfg.backbone`` and its explicit few-step schedule (steps from its sigmas)."""
        from tdmr1.models.registry import load_backbone, schedule_of

        self.teacher_path = cfg.backbone.path
        base_dtype = getattr(cfg, "base_dtype", "fp32")
        # a bf16 base is cast on the CPU first (the fp32 copy never reaches the accelerator); FewStepSystem moves it
        self.model = load_backbone(cfg.backbone, device=self.device if base_dtype == "fp32" else "cpu")
        if base_dtype != "fp32":
            from tdmr1.models.diffusers_backbone import DTYPES

            self.model.denoiser.to(DTYPES[base_dtype])
        if isinstance(self.model, EmbeddedT2I):
            raise ConfigError(
                f"{cfg.backbone.path} is an embedded checkpoint: train embedded students with init=<student> "
                "(backbone.path is for diffusers pipelines: sd3, zimage)"
            )
        sigmas, solver = schedule_of(self.model, 4, 3.0)
        self.sampling = SamplingConfig(steps=len(sigmas) - 1, cfg=1.0, sampler=solver, shift=3.0)

    def _scale_memory(self, cfg: RLConfig) -> None:
        """A scale config's memory switches: LoRA weights (hence their gradients, EMA and AdamW states) fp32
        over a bf16 base, and per-block gradient checkpointing that recomputes with the right role."""
        if getattr(cfg, "base_dtype", "fp32") != "fp32":
            for name, p in self.model.denoiser.named_parameters():
                if "lora_" in name:
                    p.data = p.data.float()
        if getattr(cfg, "gradient_checkpointing", False):
            from tdmr1.models.lora.checkpointing import enable_role_checkpointing

            enable_role_checkpointing(self.model.denoiser)

    def _cache_prompts(self) -> None:
        """Every prompt the run will encode (the pool, the grid, the empty prompt) once; then the text
        encoders leave the accelerator."""
        prompts = [md["prompt"] for md in self.pool] + list(self.world.grid_prompts()) + [""]
        self.model.cache_prompts(list(dict.fromkeys(prompts)))
        self.model.offload_text_encoders("cpu")

    def _init_scale_generator(self, cfg: RLConfig) -> None:
        """The generator adapter from ``cfg.init_lora`` (the authors' order-only ``.ckpt`` or a named
        ``.safetensors``); without it every role starts fresh (= the base model)."""
        init_lora = getattr(cfg, "init_lora", None)
        if not init_lora:
            return
        if str(init_lora).endswith(".safetensors"):
            from safetensors.torch import load_file

            from tdmr1.errors import CheckpointError

            if not Path(init_lora).is_file():
                raise CheckpointError(f"LoRA file not found: {init_lora}")
            self.roles.load_adapter_state("generator", load_file(str(init_lora)))
        else:
            from tdmr1.models.lora.presets import load_ordered_adapter

            load_ordered_adapter(self.model.denoiser, "generator", init_lora)

    def _prompt_pool(self, cfg: RLConfig) -> list[dict]:
        """The world's training prompts, or a scale config's ``prompts`` file (one a line, or jsonl)."""
        prompts = getattr(cfg, "prompts", None)
        if not prompts:
            return self.world.training_prompts()
        from tdmr1.geneval.layout import read_prompt_file

        return read_prompt_file(prompts, known_tags=None, require_include=False)

    # ---- state ---------------------------------------------------------------------------------
    def _state_parts(self, replay: deque | None = None) -> tuple[dict[str, Any], dict[str, torch.optim.Optimizer]]:
        denoiser = _AdapterState(self.model.denoiser) if self.scale else self.model.denoiser
        modules = {"denoiser": denoiser, "gen_ema": self.gen_ema, **self.surrogate.state_modules()}
        replay_state = _ReplayState(self.replay if replay is None else replay, self.layout)
        modules |= {"torch_gen": _GeneratorState(self.gen), "replay": replay_state, "warmup": self.warmup_state}
        return modules, self.opt

    def save(self) -> None:
        """Rank 0 writes (the replay buffer gathered into whole batches first); the others wait."""
        replay = deque(ro.gathered(self.layout) for ro in self.replay)
        if self.main:
            self.export(self.out_dir / "model")  # first: the exported model never lags the state
            modules, opts = self._state_parts(replay)
            save_training_state(self.out_dir, self.step, modules, opts, self.rng)
        barrier()

    def export(self, directory: Path) -> None:
        """The generator (EMA weights) as a sampling checkpoint."""
        meta = {"rl_iterations": self.step, "rl_reward": getattr(self.reward, "name", "reward")}
        if self.scale:
            self._export_adapter(directory, meta)
            return
        export_student(self.system, self.gen_ema, directory, str(self.teacher_path), self.sampling, meta)

    def _export_adapter(self, directory: Path, meta: dict[str, Any]) -> None:
        """Scale runs: the generator adapter (EMA weights, peft names; ``tdmr1 convert-lora`` turns it into
        the authors' order-only ``.ckpt``) and a ``config.json`` naming the backbone, LoRA and schedule."""
        from safetensors.torch import save_file

        from tdmr1.utils.io import atomic_write_text, atomic_writer

        directory.mkdir(parents=True, exist_ok=True)
        self.gen_ema.swap()
        try:
            adapter = self.roles.adapter_state("generator")
        finally:
            self.gen_ema.swap()
        with atomic_writer(directory / ADAPTER_FILE) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, str(tmp))
        info = {
            "format": "tdmr1-adapter-v1",
            "backbone": to_dict(self.cfg.backbone),
            "kind": getattr(self.model, "kind", None),
            "lora": to_dict(self.roles.lora["generator"]),
            "sigmas": self.system.sigmas.tolist(),
            "solver": self.system.solver,
            "ema_decay": self.cfg.ema_decay,  # written as "decay" when converted to the authors' EMA .ckpt
            **meta,
        }
        atomic_write_text(directory / "config.json", json.dumps(info, indent=2))

    def resume(self) -> bool:
        if not has_training_state(self.out_dir):
            return False
        modules, opts = self._state_parts()
        self.step, _ = load_training_state(self.out_dir, modules, opts, self.rng)
        return True

    # ---- rollout -------------------------------------------------------------------------------
    def rollout(self, with_predictions: bool = True) -> Rollout:
        """This process's rows of the iteration's m x G images (all of them with one process): the whole
        batch's prompts and noise are drawn on every process, rewards gathered before the advantages."""
        cfg, layout = self.cfg, self.layout
        picks = self.stream.draw(self.rng, cfg.prompts_per_iteration)
        metadata = [md for md in picks for _ in range(cfg.group_size)]
        metadata = [metadata[i] for i in layout.rows().tolist()]
        prompts = [md["prompt"] for md in metadata]
        groups = torch.arange(cfg.prompts_per_iteration, device=self.device).repeat_interleave(cfg.group_size)
        cond = self.system.encode(prompts)
        traj = self.system.rollout(cond, layout.mine(self.system.randn(layout.images, generator=self.gen)))
        if hasattr(self.reward, "set_iteration"):
            self.reward.set_iteration(self.step)  # likes: label rows carry the trainer's iteration
        timeout = None if getattr(self.reward, "interactive", False) else cfg.reward_timeout_s  # a person: no timeout
        out, failure = None, None
        try:
            out = call_reward(self.reward, images_of(self.model, traj.final), prompts, metadata, timeout)
        except RewardError as exc:
            failure = exc
        if any_rank(failure is not None):  # every process stops or skips the batch together
            raise failure or RewardError("the reward failed on another process")
        assert out is not None
        self.reward_parts = average_stats(reward_parts(out.info))  # {"reward/<part>": mean} of a weighted sum
        rewards = torch.from_numpy(out.scores).float().to(self.device)
        adv = group_advantages(layout.gather_rows(rewards), groups, cfg.adv_eps, cfg.adv_clip)
        correct = float(np.mean(out.info["correct"])) if "correct" in out.info else float("nan")
        correct = average_stats({"correct": correct})["correct"]
        tags = tuple(md.get("tag", "untagged") for md in picks)
        x0_preds = traj.x0_preds if with_predictions else None
        return Rollout(traj.states, cond, layout.mine(groups), rewards, layout.mine(adv), correct, x0_preds, tags)

    def minibatches(self, ro: Rollout):
        """Index sets of whole groups, ``minibatch_groups`` groups each, in a random order."""
        n_prompts, size = len(torch.unique(ro.group)), self.layout.minibatch_groups
        order = torch.randperm(n_prompts, generator=self.gen, device=self.device)
        for start in range(0, n_prompts, size):
            yield torch.cat([torch.nonzero(ro.group == g).flatten() for g in order[start : start + size]])

    def _text(self, ro: Rollout, idx: torch.Tensor):
        cond = (ro.cond[0][idx], ro.cond[1][idx])
        uncond = (self.uncond_1[0].expand(len(idx), -1, -1), self.uncond_1[1].expand(len(idx), -1))
        return cond, uncond

    def _train_steps(self) -> list[int]:
        k = self.sampling.steps
        return torch.randperm(k, generator=self.gen, device=self.device)[
            : min(self.cfg.train_steps_per_iteration, k)
        ].tolist()

    def _n_minibatches(self) -> int:
        return -(-self.cfg.prompts_per_iteration // self.layout.minibatch_groups)

    def _whole(self, level: torch.Tensor) -> torch.Tensor:
        """A micro-step's per-row level (one value: one step index) for the rows of every process."""
        if self.layout.processes == 1:
            return level
        return level[:1].expand(len(level) * self.layout.processes)

    def _n_micro(self) -> int:
        """Micro-steps of the fake and generator updates: minibatches x trained step indices."""
        return self._n_minibatches() * min(self.cfg.train_steps_per_iteration, self.sampling.steps)

    # ---- the three updates ---------------------------------------------------------------------
    def update_fake(self, ro: Rollout) -> float:
        cfg, sys_ = self.cfg, self.system
        total, count = 0.0, 0
        for idx in self.minibatches(ro):
            cond, _ = self._text(ro, idx)
            for j in self._train_steps():
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
                shape = (len(self._whole(s_next)), *x_next.shape[1:])  # the whole minibatch's draws
                tau, noise = fake_draws(sys_, self._whole(s_next), self._whole(s_upper), shape, self.gen)
                tau, noise = self.layout.mine(tau), self.layout.mine(noise)
                loss = fake_loss(sys_, x_next, x0_hat, s_next, tau, noise, cond, cfg.fake_base_weight)
                (loss / self._n_micro()).backward()
                total, count = total + loss.item(), count + 1
        return average_stats({"loss_fake": total / max(count, 1)})["loss_fake"]

    def update_surrogate(self, ro: Rollout) -> dict[str, float]:
        """Gradients of one surrogate step on ``ro``: ``surrogate_draws`` group-shared (state, level, noise)
        draws per minibatch."""
        cfg, sys_, k_max = self.cfg, self.system, self.sampling.steps
        n_micro = self._n_minibatches() * cfg.surrogate_draws
        stats = {"loss_sur": 0.0, "clip_frac": 0.0}
        for idx in self.minibatches(ro):
            cond, _ = self._text(ro, idx)
            group = ro.group[idx]
            for _ in range(cfg.surrogate_draws):
                k, tau = draw_surrogate_points(
                    sys_.sigmas,
                    sys_.shift,
                    group,
                    self.gen,
                    cfg.t_min_surrogate,
                    cfg.t_max_surrogate,
                    cfg.tau_margin,
                    cfg.surrogate_clean_share,
                )
                xi = group_noise(tuple(ro.states.shape[2:]), group, self.gen, self.device)
                x_k, weight = ro.states[k, idx], k.float() / k_max
                loss, info = self.surrogate.loss(x_k, sys_.sigmas[k], xi, tau, cond, ro.adv[idx], group, weight)
                (loss / n_micro).backward()
                stats["loss_sur"] += loss.item() / n_micro
                stats["clip_frac"] += info["clip_frac"] / n_micro
        return average_stats(stats)

    def update_generator(self, ro: Rollout) -> dict[str, float]:
        cfg, sys_ = self.cfg, self.system
        sums: dict[str, float] = {}
        for idx in self.minibatches(ro):
            cond, uncond = self._text(ro, idx)
            group = ro.group[idx]
            for j in self._train_steps():
                js = torch.full((len(idx),), j, device=self.device)
                x0_hat, x_next = sys_.generator_step(ro.states[j, idx], js, cond)  # x_next: the Euler step
                s_next = sys_.sigmas[js + 1]
                with torch.no_grad():
                    x_n = x_next.detach()
                    tau = self.layout.mine(draw_levels(self._whole(s_next), sys_.shift, self.gen))
                    shape = (len(self._whole(s_next)), *x_n.shape[1:])  # the whole minibatch's noise
                    noise = self.layout.mine(torch.randn(shape, generator=self.gen, device=self.device))
                    x_tau = sys_.diffuse(x_n, s_next, tau, noise)
                    x0_base_c, x0_base_u = sys_.x0_cond_uncond("base", x_tau, tau, cond, uncond)
                    x0_fake = sys_.x0("fake", x_tau, tau, cond)
                x_tau_r, tau_r = reward_point(
                    x_n, s_next, group, sys_.shift, cfg.t_min_reward, self.gen, self._t_max_reward(), x0_hat.detach()
                )
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
                    reward_mask=torch.full((len(idx),), float(j < cfg.trunc_steps), device=self.device),
                    guidance_scale=cfg.cfg,
                    w_kl=cfg.w_kl,
                    w_cfg=cfg.w_cfg,
                    w_reward=cfg.w_reward,
                    huber_c=cfg.huber_c,
                )
                (loss / self._n_micro()).backward()
                for key, v in {"loss_gen": loss.item(), **info}.items():
                    sums[key] = sums.get(key, 0.0) + v / self._n_micro()
        return average_stats(sums)

    def reward_queries(self, iterations: int) -> int:
        """Images labelled by the reward after ``iterations`` iterations (warm-up and extra rollouts included)."""
        cfg = self.cfg
        batches = cfg.surrogate_warmup + iterations * (1 + cfg.surrogate_rollouts)
        return batches * cfg.prompts_per_iteration * cfg.group_size

    def _t_max_reward(self) -> float:
        return self.cfg.t_max_surrogate if self.cfg.t_max_reward is None else self.cfg.t_max_reward

    def train_surrogate(self, ro: Rollout) -> dict[str, float]:
        """The surrogate's share of an iteration: ``surrogate_steps`` optimizer steps, the first on the fresh
        batch ``ro``, the others on rollouts drawn from the replay buffer of recent iterations."""
        cfg = self.cfg
        stats: dict[str, float] = {}
        for _ in range(cfg.surrogate_rollouts):  # labelled for the surrogate only
            with torch.no_grad():
                self.replay.append(self.rollout(with_predictions=False))
        for i in range(cfg.surrogate_steps):
            if i == 0 or not cfg.surrogate_replay or not self.replay:
                batch = ro
            else:
                pick = torch.randint(len(self.replay), (1,), generator=self.gen, device=self.device)
                batch = self.replay[int(pick)]
            step_stats = self.update_surrogate(batch)
            step_stats["grad_sur"] = self._step("surrogate")
            self.surrogate.after_step(self.step)
            for key, v in step_stats.items():
                stats[key] = stats.get(key, 0.0) + v / cfg.surrogate_steps
        if cfg.surrogate_replay:
            self.replay.append(ro.without_predictions())
        return stats

    def warm_up_surrogate(self, log: Any) -> dict[str, float]:
        """Before iteration 1: ``surrogate_warmup`` labelled rollout batches of the initial generator into
        the replay buffer, then ``surrogate_warmup_steps`` surrogate steps on batches drawn from it."""
        cfg = self.cfg
        t0 = time.time()
        for i in range(cfg.surrogate_warmup):
            with torch.no_grad():
                self.replay.append(self.rollout(with_predictions=False))
            if (i + 1) % 25 == 0 or i + 1 == cfg.surrogate_warmup:
                log.info(
                    f"surrogate warm-up: {i + 1}/{cfg.surrogate_warmup} batches labelled ({time.time() - t0:.0f} s)"
                )
        held = self.replay.pop()  # the last batch: how well the warmed-up surrogate ranks unseen images
        for i in range(cfg.surrogate_warmup_steps):
            pick = torch.randint(len(self.replay), (1,), generator=self.gen, device=self.device)
            self.update_surrogate(self.replay[int(pick)])
            self._step("surrogate")
            self.surrogate.after_step(self.step)
            if (i + 1) % 250 == 0 or i + 1 == cfg.surrogate_warmup_steps:
                log.info(f"surrogate warm-up: step {i + 1}/{cfg.surrogate_warmup_steps} ({time.time() - t0:.0f} s)")
        self.replay.append(held)
        out = {f"warmup/{k}": v for k, v in self.surrogate_rank(held).items()}
        out["warmup/seconds"] = time.time() - t0
        self.warmup_state.done = True
        return out

    def surrogate_rank(self, ro: Rollout) -> dict[str, float]:
        """Within-prompt correlation of ``ro``'s advantages with the surrogate's reward of the clean images
        (``sur_rank``: tau in [t_min_surrogate, t_max_surrogate], ``sur_rank_draws`` draws), and the same in
        each band of ``sur_rank_bands`` (half the draws each). Its own random generator: training is unchanged."""
        cfg = self.cfg
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + self.step)
        clean, cond, group = ro.states[-1], ro.cond, ro.group

        adv, all_groups = self.layout.gather_rows(ro.adv), self.layout.gather_rows(group)

        def rank(t_min: float, t_max: float, draws: int) -> float:
            margin = clean_margin(self.surrogate, clean, cond, group, t_min, t_max, draws, gen)
            return pearson(adv, self.layout.gather_rows(margin), all_groups)

        lo, hi = cfg.t_min_surrogate, cfg.t_max_surrogate
        margin = self.layout.gather_rows(
            clean_margin(self.surrogate, clean, cond, group, lo, hi, cfg.sur_rank_draws, gen)
        )
        out = {"sur_rank": pearson(adv, margin, all_groups)}
        for tag, rows in tag_rows(ro.tags, all_groups).items():
            out[f"sur_rank/{tag}"] = pearson(adv[rows], margin[rows], all_groups[rows])
        bands = cfg.sur_rank_bands
        for lo, hi in zip(bands, bands[1:], strict=False):
            out[f"sur_rank_tau_{lo:.2f}_{hi:.2f}"] = rank(lo, hi, max(cfg.sur_rank_draws // 2, 1))
        return out

    def _step(self, role: str) -> float:
        params = [p for g in self.opt[role].param_groups for p in g["params"]]
        all_reduce_grads([p for p in params if p.grad is not None])  # averaged over processes
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.opt[role].step()
        self.opt[role].zero_grad(set_to_none=True)
        return float(norm)

    # ---- one iteration -------------------------------------------------------------------------
    def iteration(self) -> dict[str, float]:
        for opt in self.opt.values():
            opt.zero_grad(set_to_none=True)
        ro = self.rollout()
        reward = float(mean_over_ranks(ro.rewards.mean()))
        stats: dict[str, float] = {"reward": reward, "correct": ro.correct, **self.reward_parts}
        stats.update(tag_stats(ro.tags, self.layout.gather_rows(ro.rewards), self.layout.gather_rows(ro.adv)))
        stats["reward_queries"] = float(self.reward_queries(self.step + 1))
        if self.cfg.sur_rank_every and (self.step + 1) % self.cfg.sur_rank_every == 0:
            stats.update(self.surrogate_rank(ro))  # before the surrogate sees this batch
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
        self.gen_ema.swap()
        try:
            with self.roles.use("generator"), torch.no_grad():
                seeds = [1000 + i for i in range(len(self.grid_prompts))]
                if self.scale:  # the student's own schedule, latents decoded
                    noise = torch.stack(
                        [torch.randn(self.model.image_shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
                    ).to(self.device)
                    traj = self.system.rollout(self.system.encode(self.grid_prompts), noise)
                    imgs = images_of(self.model, traj.final)
                else:
                    imgs = generate_images(self.model, self.grid_prompts, seeds, self.sampling)
        finally:
            self.gen_ema.swap()
        save_grid(imgs, self.out_dir / "samples" / f"{name}.png", labels=self.grid_prompts)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = True) -> Path:
        cfg = self.cfg
        has_state = main_first(lambda: prepare_run_dir(self.out_dir, resume, to_dict(cfg)))
        if not (has_state and self.resume()) and self.main:
            self.grid("before")
        log: RunLogger | _QuietLog = _QuietLog()
        if self.main:
            (self.out_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
            log = RunLogger(
                self.out_dir, total=cfg.iterations, start=self.step, desc=f"TDM-R1 {cfg.world}", quiet=self.quiet
            )
        t0 = time.time()
        skips = SkipBudget(cfg.max_skipped_batches)
        try:
            if cfg.surrogate_warmup and not self.warmup_state.done:
                log.scalars(0, self.warm_up_surrogate(log))
                self.save()
            if self.step == 0 and cfg.val_every:
                log.scalars(0, {f"val/{k}": v for k, v in self.validate().items()})
            while self.step < cfg.iterations:
                if cfg.max_minutes is not None and any_rank(time.time() - t0 > 60 * cfg.max_minutes):
                    log.info(f"time budget of {cfg.max_minutes} min reached at iteration {self.step}")
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
        except KeyboardInterrupt:
            raise interrupted("TDM-R1", "iteration", self.step, cfg.checkpoint_every) from None
        finally:
            log.close()
        self.save()
        if self.main:
            self.grid("after")
            plot_reward_curve(self.out_dir, self.out_dir / "reward_curve.png")
        log.info(
            f"TDM-R1: {self.step} iterations in {time.time() - t0:.0f} s ({skips.total} skipped batches); "
            f"model at {self.out_dir / 'model'}"
        )
        return self.out_dir / "model"
