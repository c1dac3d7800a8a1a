"""Surrogate losses on groups split unevenly over processes: each process's gradient, averaged as gradient
averaging over processes does, equals one process's on the whole batch (the all-reduce emulated)."""

from __future__ import annotations

import torch

from tdmr1.r1.losses import explicit_regression_loss, explicit_surrogate_loss, group_mean


def _whole_group_reduce(full_values: list[torch.Tensor], group: torch.Tensor):
    """A ``group_reduce`` that answers its k-th call with the whole batch's group means of ``full_values[k]``
    (what the all-reduce returns when every process asks about the same quantity)."""
    calls = iter(full_values)

    def reduce(means: torch.Tensor, ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        whole = next(calls)
        all_ids = torch.unique(group)
        sums = torch.zeros(len(all_ids)).index_add_(0, torch.searchsorted(all_ids, group), whole)
        n = torch.zeros(len(all_ids)).index_add_(0, torch.searchsorted(all_ids, group), torch.ones_like(whole))
        return (sums / n)[torch.searchsorted(all_ids, ids)]

    return reduce


def test_regression_loss_gradient_of_split_groups_equals_one_process():
    gen = torch.Generator().manual_seed(0)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    rewards = torch.randn(8, generator=gen)
    adv = rewards - group_mean(rewards, group)
    weight = torch.rand(8, generator=gen) + 0.5
    r = torch.randn(8, generator=gen, requires_grad=True)
    explicit_regression_loss(r, adv, group, weight).backward()
    want = r.grad.clone()

    err = r.detach() - group_mean(r.detach(), group) - adv
    got = torch.zeros(8)
    for rows in (torch.tensor([0, 1, 2, 4]), torch.tensor([3, 5, 6, 7])):  # 3 + 1 and 1 + 3 rows of the groups
        r_p = r.detach()[rows].clone().requires_grad_(True)
        reduce = _whole_group_reduce([r.detach(), weight * err], group)
        loss = explicit_regression_loss(r_p, adv[rows], group[rows], weight[rows], reduce)
        loss.backward()
        got[rows] += r_p.grad / 2  # gradients averaged over the 2 processes
        torch.testing.assert_close(loss, (weight * err.pow(2))[rows].mean())  # the value: its rows' share
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_bradley_terry_loss_gradient_of_split_groups_equals_one_process():
    gen = torch.Generator().manual_seed(1)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    rewards = torch.randn(8, generator=gen)
    adv = rewards - group_mean(rewards, group)
    r = torch.randn(8, generator=gen, requires_grad=True)
    explicit_surrogate_loss(r, adv, group, beta=2.0).backward()
    want = r.grad.clone()

    got = torch.zeros(8)
    s_full = -2.0 * adv * r.detach()  # S_g is -beta x the group mean of A r
    for rows in (torch.tensor([0, 1, 2, 4]), torch.tensor([3, 5, 6, 7])):
        r_p = r.detach()[rows].clone().requires_grad_(True)
        explicit_surrogate_loss(r_p, adv[rows], group[rows], 2.0, _whole_group_reduce([s_full], group)).backward()
        got[rows] += r_p.grad / 2
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
