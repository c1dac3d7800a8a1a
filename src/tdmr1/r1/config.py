"""TDM-R1 configuration: every hyperparameter of docs/METHOD.md sec. 4, with the authors' values as defaults
where they apply (GenEval column for the shapes world)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tdmr1.config import at_least, option, positive, within
from tdmr1.errors import ConfigError
from tdmr1.models.lora.roles import LoraSettings
from tdmr1.training.distributed import BatchLayout
from tdmr1.training.run_config import RunConfig

#: Images rolled out per iteration at most (all of them are held at once, with their trajectories).
MAX_IMAGES_PER_ITERATION = 16384


@dataclass
class RLSettings:
    """What TDM-R1 learns and how: every hyperparameter of the method (docs/METHOD.md sec. 4)."""

    world: str = option("shapes", "embedded world: prompts, reward, validation benchmark")
    init: str = option("checkpoints/shapes/tdm4", "few-step student to start from (exported by `distill`)")
    teacher: str | None = option(None, "base/teacher checkpoint (default: the one recorded in the student)")
    reward: str | dict | None = option(
        None,
        "reward: a name (shapes, ocr, likes, module:attr), http://host:port (tdmr1 serve-reward), or a mapping "
        "{reward: weight or options} (weighted sum, each part logged); default: the world's own reward",
    )
    lora: LoraSettings = option(factory=LoraSettings, doc="adapter shape of generator, fake, surrogate")
    lora_surrogate: LoraSettings | None = option(
        None, "the surrogate roles' own adapter shape (null = `lora`; the authors adapt attention only)"
    )
    # --- batch arithmetic -------------------------------------------------------------------------
    iterations: int = option(300, "RL iterations (one optimizer step per role each; 0 = only the surrogate warm-up)")
    prompts_per_iteration: int = option(8, "m: prompt groups per iteration")
    group_size: int = option(8, "G: images per prompt (paper: 24)")
    minibatch_groups: int = option(4, "groups per minibatch (groups are never split); gradients accumulate")
    train_steps_per_iteration: int = option(2, "random step indices j of the K trained per minibatch")
    prompt_stream: Literal["balanced", "pool"] = option(
        "balanced",
        "balanced: each group picks a tag (weights tag_weights), then a prompt of it; pool: uniform over the "
        "world's whole training pool (ShapesEval's is 84 % color_attr)",
    )
    tag_weights: dict[str, float] | None = option(
        None, "balanced stream: relative weight per tag (missing tags 0; null = every tag of the pool equally)"
    )
    surrogate_rollouts: int = option(
        0,
        "extra rollout batches (m x G images each) per iteration, labelled by the reward for the surrogate only "
        "(reward queries; they enter the replay buffer)",
    )
    # --- advantages -------------------------------------------------------------------------------
    adv_eps: float = option(1e-4, "added to the batch std of rewards")
    adv_clip: float = option(5.0, "advantages clipped to [-adv_clip, adv_clip]")
    # --- surrogate reward model -------------------------------------------------------------------
    surrogate: Literal["implicit", "explicit"] = option(
        "implicit",
        "implicit: the paper's diffusion-model surrogate (reward d_ref - d); explicit: a labelled variant, a "
        "reward head on the frozen base's features (r1/surrogate/head.py), same loss, its input gradient as direction",
    )
    beta: float = option(1.0, "Bradley-Terry temperature (GenEval 1, OCR 10)")
    t_min_surrogate: float = option(0.55, "lowest noise level for surrogate training (GenEval 550/1000)")
    t_max_surrogate: float = option(1.0, "highest noise level for surrogate training (authors: 1)")
    tau_margin: float = option(
        0.02, "surrogate tau at least this far above the state's level, pre-shift (authors: 20/1000)"
    )
    surrogate_clean_share: float = option(
        0.0, "share of surrogate draws put on the clean state k = K (authors' commented-out option: 0.5)"
    )
    surrogate_draws: int = option(2, "surrogate noise draws per image per surrogate step (authors: 2)")
    surrogate_steps: int = option(1, "surrogate optimizer steps per iteration (the first on the fresh batch)")
    surrogate_replay: int = option(
        0, "earlier iterations' rollouts kept for the extra surrogate steps (0 = fresh batch only)"
    )
    explicit_input: Literal["features", "pixels"] = option(
        "features",
        "explicit surrogate's input: the frozen base's mid-block features + pooled pixels, or the pixels alone "
        "(a small level-aware CNN, no backbone forward: cheap enough for many surrogate steps)",
    )
    explicit_prompt: Literal["mean", "attention"] = option(
        "mean",
        "pixel reward head's prompt conditioning: FiLM from the masked-mean token states, or also cross-attention "
        "to the tokens (order-aware: which colour goes with which shape, which letter where)",
    )
    explicit_loss: Literal["bt", "mse"] = option(
        "bt", "explicit surrogate's loss: group Bradley-Terry, or within-prompt regression of the advantages"
    )
    surrogate_warmup: int = option(
        0,
        "rollout batches (m x G images each) of the initial generator labelled before iteration 1 to pre-train the "
        "surrogate on (reward queries; kept in the replay buffer, so surrogate_replay >= this)",
    )
    surrogate_warmup_steps: int = option(0, "surrogate optimizer steps on the warm-up batches before iteration 1")
    surrogate_init: str | None = option(
        None,
        "explicit surrogate: start the reward head from a file a run wrote after its warm-up "
        "(surrogate_warmup.safetensors, or a folder holding it such as checkpoints/shapes/surrogate)",
    )
    head_width: int = option(64, "explicit surrogate: reward head width")
    lr_head: float = option(1e-3, "explicit surrogate: reward head AdamW lr")
    explicit_step: float = option(0.05, "explicit surrogate: per-sample RMS of the reward direction (x0 units)")
    reference: Literal["base", "ema"] = option("base", "reference of the implicit reward: frozen base (code) or EMA")
    ppo_clip: float = option(1e-3, "PPO-style clip against the lagging EMA surrogate")
    anchor_limit: float = option(0.05, "anchor: detach when mean||v_sur - v_base||^2 exceeds this on the right side")
    anchor_weight: float = option(1e-3, "weight of mean||v_sur - v_base||^2 in the surrogate loss")
    surrogate_ema_max: float = option(0.3, "old-surrogate EMA decay min(max, start + rate n)")
    surrogate_ema_start: float = option(0.001, "old-surrogate EMA decay at n = 0")
    surrogate_ema_rate: float = option(0.001, "old-surrogate EMA decay growth per iteration")
    # --- generator ----------------------------------------------------------------------------------
    cfg: float = option(4.5, "teacher CFG of the CFG-as-reward direction and the normaliser")
    surrogate_cfg: float = option(2.5, "surrogate CFG in the reward direction (GenEval 2.5, OCR 4.5)")
    t_min_reward: float = option(0.25, "lowest noise level of the reward direction (GenEval 250/1000)")
    t_max_reward: float | None = option(
        None,
        "highest noise level of the reward direction (null = t_max_surrogate: read only where the surrogate "
        "trained); a step whose state is noisier reads it from its own x0 prediction",
    )
    trunc_steps: int = option(4, "steps j < trunc_steps get the reward term")
    w_kl: float = option(1.0, "weight of the reverse-KL (base - fake) direction")
    w_cfg: float = option(0.3, "weight of the CFG direction")
    w_reward: float = option(0.7, "weight of the surrogate-reward direction")
    reward_gate: float | None = option(
        None,
        "read the reward direction only on prompt tags whose fresh batches the surrogate ranks at least this "
        "well (lower bound of the running mean of sur_rank/<tag>, measured every sur_rank_every iterations; "
        "closed until measured on 4 groups); null = on every tag",
    )
    huber_c: float | None = option(None, "pseudo-Huber constant (null = squared error)")
    # --- fake score ---------------------------------------------------------------------------------
    fake_base_weight: float = option(0.02, "fake score's MSE weight toward the frozen base")
    interval: Literal["tdm", "separate"] = option("tdm", "fake-score noise interval (t_{j+1}, T] or (t_{j+1}, t_j]")
    # --- optimisers ---------------------------------------------------------------------------------
    lr_generator: float = option(
        7.5e-5, "generator AdamW lr (authors' value at 1152 images/iteration; scale ~sqrt(batch) for small batches)"
    )
    lr_fake: float = option(3e-4, "fake-score AdamW lr")
    lr_surrogate: float = option(3e-4, "surrogate AdamW lr")
    betas_generator: tuple[float, float] = option((0.0, 0.999), "generator AdamW betas")
    betas_fake: tuple[float, float] = option((0.0, 0.999), "fake-score AdamW betas")
    betas_surrogate: tuple[float, float] = option((0.9, 0.999), "surrogate AdamW betas")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    grad_clip: float = option(1.0, "gradient-norm clip per role")
    ema_decay: float = option(0.9, "generator EMA: decay min((1+n)/(10+n), ema_decay)")
    # --- run control --------------------------------------------------------------------------------
    reward_timeout_s: float = option(120.0, "a reward call slower than this is an error")
    skip_bad_reward_batches: bool = option(False, "skip a batch whose reward fails instead of stopping")
    max_skipped_batches: int = option(
        3, "with skip_bad_reward_batches: stop (RewardError) when more than this many batches fail in a row"
    )


@dataclass
class RLConfig(RunConfig, RLSettings):
    """TDM-R1: surrogate-reward RL of a few-step generator from a black-box reward (its settings, the run
    options, then its logging, saving, diagnostic and validation cadences)."""

    log_every: int = option(1, "TensorBoard scalars every N iterations")
    snapshot_every: int = option(
        0, "also export the model to snapshots/iter_NNNNN every N iterations, for learning curves (0 = off)"
    )
    checkpoint_every: int = option(10, "resumable state + exported model every N iterations")
    sur_rank_every: int = option(
        10, "every N iterations: how well the surrogate ranks the fresh batch before training on it (0 = off)"
    )
    sur_rank_draws: int = option(8, "noise draws averaged per image for sur_rank")
    sur_rank_bands: tuple[float, ...] = option(
        (0.3, 0.55, 0.75, 0.9, 1.0), "edges of the tau bands sur_rank is also broken down by (empty = off)"
    )
    val_every: int = option(25, "ShapesEval on the validation slice every N iterations (0 = off)")
    val_prompts_per_tag: int = option(4, "validation slice: first N benchmark prompts per tag")
    val_images_per_prompt: int = option(2, "validation images per prompt")

    def validate(self) -> None:
        self._validate_ranges()
        if self.prompts_per_iteration % self.minibatch_groups:
            raise ConfigError(
                f"prompts_per_iteration ({self.prompts_per_iteration}) must be a multiple of "
                f"minibatch_groups ({self.minibatch_groups}) so that groups stay whole"
            )
        if self.group_size < 2:
            raise ConfigError("group_size must be >= 2 (advantages are relative within a group)")
        images = self.prompts_per_iteration * self.group_size
        if images > MAX_IMAGES_PER_ITERATION:
            raise ConfigError(
                f"prompts_per_iteration x group_size = {images} images per iteration: more than the "
                f"{MAX_IMAGES_PER_ITERATION} a run may hold in memory"
            )
        for key in ("t_min_surrogate", "t_min_reward"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{key} must be in [0, 1)")
        if not self.t_min_surrogate < self.t_max_surrogate <= 1.0:
            raise ConfigError("t_max_surrogate must be in (t_min_surrogate, 1]")
        if not 0.0 <= self.surrogate_clean_share <= 1.0 or not 0.0 <= self.tau_margin < 1.0:
            raise ConfigError("surrogate_clean_share must be in [0, 1] and tau_margin in [0, 1)")
        for key in ("surrogate_draws", "surrogate_steps", "head_width"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1")
        if self.surrogate_replay < 0 or self.surrogate_rollouts < 0:
            raise ConfigError("surrogate_replay and surrogate_rollouts must be >= 0")
        if self.surrogate_rollouts and self.surrogate_replay < self.surrogate_rollouts + 1:
            raise ConfigError(
                "surrogate_rollouts needs surrogate_replay >= surrogate_rollouts + 1 (they are kept there)"
            )
        if self.surrogate_warmup_steps and self.surrogate_warmup == 1:
            raise ConfigError("surrogate_warmup_steps need surrogate_warmup >= 2 (its last batch is held out)")
        if self.surrogate_warmup > self.surrogate_replay or (self.surrogate_warmup_steps and not self.surrogate_warmup):
            raise ConfigError("surrogate_warmup needs surrogate_replay >= surrogate_warmup, and steps need batches")
        if self.t_max_reward is not None and not self.t_min_reward < self.t_max_reward <= 1.0:
            raise ConfigError("t_max_reward must be in (t_min_reward, 1]")
        if self.explicit_prompt != "mean" and self.explicit_input != "pixels":
            raise ConfigError("explicit_prompt=attention is an option of the pixel head: set explicit_input=pixels")
        if self.surrogate_init is not None and self.surrogate != "explicit":
            raise ConfigError("surrogate_init loads a reward head: it needs surrogate=explicit")
        if self.reward_gate is not None and not (self.sur_rank_every and -1.0 <= self.reward_gate <= 1.0):
            raise ConfigError(
                "reward_gate needs sur_rank_every >= 1 (it opens on measured rankings), a value in [-1, 1]"
            )
        weights = list((self.tag_weights or {}).values())
        if self.tag_weights is not None and (any(not w >= 0 for w in weights) or not sum(weights) > 0):
            raise ConfigError("tag_weights must map tags to weights >= 0, at least one > 0")
        bands = self.sur_rank_bands
        if bands and (len(bands) < 2 or any(b <= a for a, b in zip(bands, bands[1:], strict=False)) or bands[-1] > 1):
            raise ConfigError("sur_rank_bands must be increasing level edges in [0, 1] (at least two)")

    def _validate_ranges(self) -> None:
        """Every numeric field in its range (before anything divides by one of them)."""
        at_least(
            self,
            1,
            "prompts_per_iteration minibatch_groups train_steps_per_iteration checkpoint_every "
            "sur_rank_draws val_prompts_per_tag val_images_per_prompt",
        )
        at_least(
            self,
            0,
            "iterations surrogate_warmup surrogate_warmup_steps trunc_steps weight_decay fake_base_weight anchor_limit "
            "anchor_weight ppo_clip cfg surrogate_cfg w_kl w_cfg w_reward surrogate_ema_rate seed threads log_every "
            "sur_rank_every val_every surrogate_rollouts max_skipped_batches snapshot_every",
        )
        positive(
            self,
            "adv_eps adv_clip beta lr_generator lr_fake lr_surrogate lr_head explicit_step grad_clip "
            "reward_timeout_s huber_c max_minutes",
        )
        within(self, 0.0, 1.0, "ema_decay surrogate_ema_max surrogate_ema_start")
        for key in ("betas_generator", "betas_fake", "betas_surrogate"):
            if not all(0.0 <= b < 1.0 for b in getattr(self, key)):
                raise ConfigError(f"{key} must be two numbers in [0, 1), got {list(getattr(self, key))}")
        for key in ("lora", "lora_surrogate"):
            if getattr(self, key) is not None:
                positive(getattr(self, key), "alpha", prefix=f"{key}.")


def batch_layout(cfg: RLConfig, rank: int, processes: int) -> BatchLayout:
    """How an iteration's images spread over ``processes`` (ConfigError with the reason when they do not):
    a scale config's own :meth:`ScaleRLConfig.layout` (one source of truth, any number of processes), else
    micro-batches of ``minibatch_groups`` groups."""
    layout = getattr(cfg, "layout", None)
    if layout is not None:
        return layout(processes, rank)
    return BatchLayout.of_minibatches(cfg.group_size, cfg.prompts_per_iteration, processes, cfg.minibatch_groups, rank)


def reward_queries(cfg: RLConfig, iterations: int) -> int:
    """Images labelled by the reward after ``iterations`` iterations (warm-up and extra rollouts included)."""
    batches = cfg.surrogate_warmup + iterations * (1 + cfg.surrogate_rollouts)
    return batches * cfg.prompts_per_iteration * cfg.group_size
