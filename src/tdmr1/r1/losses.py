"""TDM-R1 losses as pure functions (docs/METHOD.md): group advantages, the per-step surrogate target, the group
Bradley-Terry surrogate losses, the generator's reward directions and its three-term loss. ``group_reduce``
(several processes) makes a group mean the whole group's."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tdmr1.diffusion.flow import bridge_coefficients, expand_like
from tdmr1.tdm.losses import direction_loss, dmd_normaliser, per_sample_mean

#: (this process's group means, their group ids, their row counts here) -> the whole groups' means
GroupReduce = Callable[[Tensor, Tensor, Tensor], Tensor]


def group_means(values: Tensor, group: Tensor, group_reduce: GroupReduce | None = None) -> tuple[Tensor, Tensor]:
    """(means [n_groups] in sorted id order, each sample's group index [N]). With ``group_reduce`` (several
    processes) the value is the whole group's mean, the gradient that of this process's mean of its rows
    (with equal shares: the whole group's scaled by the number of processes, which averaging gradients over
    processes undoes)."""
    ids, inverse = torch.unique(group, return_inverse=True)
    sums = values.new_zeros(len(ids)).index_add_(0, inverse, values)
    counts = values.new_zeros(len(ids)).index_add_(0, inverse, torch.ones_like(values))
    means = sums / counts
    if group_reduce is not None:
        means = means + (group_reduce(means.detach(), ids, counts) - means.detach())
    return means, inverse


def group_mean(values: Tensor, group: Tensor, group_reduce: GroupReduce | None = None) -> Tensor:
    """Each sample's group mean of ``values`` [N] (groups given by integer ids)."""
    means, inverse = group_means(values, group, group_reduce)
    return means[inverse]


def group_advantages(rewards: Tensor, group: Tensor, eps: float = 1e-4, clip: float = 5.0) -> Tensor:
    """A_i = (r_i - mean_group(r)) / (std of r over the whole batch + eps), clipped to [-clip, clip]."""
    centred = rewards - group_mean(rewards, group)
    return (centred / (rewards.std(unbiased=False) + eps)).clamp(-clip, clip)


def surrogate_target(x_k: Tensor, s_k: Tensor, xi: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
    """Noisy input x_tau = a x_k + b xi (bridge from level s_k up to tau) and the per-step velocity target

    v* = -x_k / (1 - s_k) + (xi / b)(tau + a s_k^2 / (1 - s_k)),

    which is the flow target xi - x0 at the clean state (s_k = 0) and, in general, the conditional
    velocity of the bridge given x_k. Returns (x_tau, v*).
    """
    a, b = bridge_coefficients(s_k, tau)
    a_, b_, s_, t_ = (expand_like(v, x_k) for v in (a, b, s_k, tau))
    x_tau = a_ * x_k + b_ * xi
    one_minus_s = (1 - s_).clamp_min(1e-6)
    v_star = -x_k / one_minus_s + (xi / b_.clamp_min(1e-6)) * (t_ + a_ * s_**2 / one_minus_s)
    return x_tau, v_star


def bt_group_weights(
    adv: Tensor, d: Tensor, d_ref: Tensor, group: Tensor, beta: float, group_reduce: GroupReduce | None = None
) -> Tensor:
    """sg(sigmoid(S_g)) per sample, S_g = (beta / G) sum_{i in g} A_i (d_i - d_ref_i)."""
    with torch.no_grad():
        s_g = beta * group_mean(adv * (d - d_ref), group, group_reduce)
        return torch.sigmoid(s_g)


def surrogate_loss(
    d: Tensor,
    d_ref: Tensor,
    adv: Tensor,
    group: Tensor,
    beta: float,
    step_weight: Tensor | None = None,
    d_old: Tensor | None = None,
    ppo_clip: float | None = None,
    anchor: Tensor | None = None,
    d_base: Tensor | None = None,
    anchor_limit: float = 0.05,
    anchor_weight: float = 1e-3,
    group_reduce: GroupReduce | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Group Bradley-Terry loss on per-sample distances d_i = mean||v* - v_sur||^2 (d_ref from the reference).

    L = mean_i[ sg(sigmoid(S_g(i))) A_i d_i * step_weight_i ] + anchor_weight * mean(anchor), whose gradient
    in d is (G / (beta N)) x that of sum_g softplus(S_g): a group Bradley-Terry loss with weights |A|.
    Clips detach d_i: PPO-style when ratio = exp(d_old - d) has already moved past 1 +- ppo_clip in the
    advantage's direction; anchor when mean||v_sur - v_base||^2 (``anchor`` [N]) > anchor_limit and the
    sample is already on the right side of the base (A_i (d_i - d_base_i) < 0).
    """
    keep = torch.ones_like(d, dtype=torch.bool)
    if ppo_clip is not None and d_old is not None:
        ratio = torch.exp(d_old.detach() - d.detach())
        keep &= ~(((adv > 0) & (ratio > 1 + ppo_clip)) | ((adv < 0) & (ratio < 1 - ppo_clip)))
    if anchor is not None and d_base is not None:
        right_side = adv * (d.detach() - d_base.detach()) < 0
        keep &= ~((anchor.detach() > anchor_limit) & right_side)
    d_used = torch.where(keep, d, d.detach())
    weight = bt_group_weights(adv, d, d_ref, group, beta, group_reduce)
    per = weight * adv * d_used
    if step_weight is not None:
        per = per * step_weight
    loss = per.mean()
    if anchor is not None and anchor_weight:
        loss = loss + anchor_weight * anchor.mean()
    return loss, {"clip_frac": 1.0 - keep.float().mean().item()}


def guided(uncond: Tensor, cond: Tensor, guidance_scale: float) -> Tensor:
    """Classifier-free guidance u + s (c - u) (diffusers' ``guidance_scale`` convention: 1 = no guidance)."""
    return uncond + guidance_scale * (cond - uncond)


def explicit_surrogate_loss(
    r: Tensor, adv: Tensor, group: Tensor, beta: float, group_reduce: GroupReduce | None = None
) -> Tensor:
    """Group Bradley-Terry loss of an explicit reward r [N] (the explicit surrogate's variant):
    mean over groups of softplus(-S_g), S_g = (beta / G) sum_{i in g} A_i r_i, which is the implicit loss
    with r in place of d_ref - d (same sign: higher r = better). With ``group_reduce`` a mean over this
    process's rows of their group's term (groups may span processes unevenly)."""
    ids, inverse = torch.unique(group, return_inverse=True)
    sums = r.new_zeros(len(ids)).index_add(0, inverse, adv * r)
    counts = r.new_zeros(len(ids)).index_add(0, inverse, torch.ones_like(r))
    s_g = -beta * sums / counts
    if group_reduce is None:
        return torch.nn.functional.softplus(s_g).mean()
    s_g = s_g + (group_reduce(s_g.detach(), ids, counts) - s_g.detach())  # the whole group's S_g
    return torch.nn.functional.softplus(s_g)[inverse].mean()


def explicit_regression_loss(
    r: Tensor, adv: Tensor, group: Tensor, weight: Tensor, group_reduce: GroupReduce | None = None
) -> Tensor:
    """Within-prompt regression of an explicit reward: mean of weight * (r - mean_group(r) - A)^2, the
    advantages A being centred per group already (a loss that does not saturate, unlike Bradley-Terry).
    With ``group_reduce`` the group mean's gradient term is the whole group's (-mean_group(weight * err)),
    not that of this process's rows: after gradient averaging, W processes get one process's gradient."""
    if group_reduce is None:
        centred = r - group_mean(r, group)
        return (weight * (centred - adv).pow(2)).mean()
    err = r - group_mean(r.detach(), group, group_reduce) - adv
    whole = group_mean((weight * err).detach(), group, group_reduce)  # mean_group(weight * err), whole group
    return (weight * err.pow(2)).mean() - 2 * (r * whole - (r * whole).detach()).mean()


def explicit_reward_direction(grad: Tensor, step: float) -> Tensor:
    """The explicit surrogate's reward direction in x0 units: its input gradient dr/dx_tau rescaled to a
    per-sample RMS of ``step`` (dx_tau/dx0 = 1 - tau is a per-sample constant, absorbed by the rescaling)."""
    rms = per_sample_mean(grad.pow(2)).sqrt().clamp_min(1e-12)
    return step * grad / expand_like(rms, grad)


def generator_rl_loss(
    x0_hat: Tensor,
    *,
    x0_base_cond: Tensor,
    x0_base_uncond: Tensor,
    x0_fake: Tensor,
    reward_dir: Tensor,
    reward_norm: Tensor | None,
    reward_mask: Tensor,
    guidance_scale: float,
    w_kl: float = 1.0,
    w_cfg: float = 0.3,
    w_reward: float = 0.7,
    huber_c: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """L = w_cfg * D(d_cfg) + w_reward * D(d_r) [only where reward_mask] + w_kl * D(d_kl) with
    D(d) = mean((x0_hat - sg(x0_hat + d))^2 / w): the reverse-KL (base - fake), CFG-as-reward and
    surrogate-reward directions; w = mean|x0_hat - x0_base_cfg|, ``reward_norm`` w_r per sample (the
    paper's: mean|x0_hat - x0_sur_cfg| with d_r = x0_sur_cfg - x0_ref; None: w_r = w, used by the explicit
    variant whose d_r has a fixed size). Predictions of the frozen/other roles must be computed without grad.
    """
    d_kl = x0_base_cond - x0_fake
    d_cfg = (guidance_scale - 1.0) * (x0_base_cond - x0_base_uncond)
    w = dmd_normaliser(x0_hat, guided(x0_base_uncond, x0_base_cond, guidance_scale))
    loss_kl = direction_loss(x0_hat, d_kl, w, huber_c)
    loss_cfg = direction_loss(x0_hat, d_cfg, w, huber_c)
    err = x0_hat - (x0_hat + reward_dir).detach()
    w_r = w if reward_norm is None else reward_norm.detach().clamp_min(1e-5)
    per_r = per_sample_mean(err.pow(2)) / w_r
    loss_r = (per_r * reward_mask.to(x0_hat.dtype)).mean()
    loss = w_kl * loss_kl + w_cfg * loss_cfg + w_reward * loss_r
    stats = {
        "loss_kl": loss_kl.item(),
        "loss_cfg": loss_cfg.item(),
        "loss_reward": loss_r.item(),
        "reward_dir_norm": per_sample_mean(reward_dir.pow(2)).mean().sqrt().item(),
    }
    return loss, stats
