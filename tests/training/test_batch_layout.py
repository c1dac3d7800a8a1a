"""BatchLayout when processes do not divide the group size (the paper's G = 24 on 16 GPUs): every micro-batch
split contiguously over the processes, each row owned once, and the layout unchanged when they do divide."""

from __future__ import annotations

import pytest
import torch

from tdmr1.errors import ConfigError
from tdmr1.training.distributed import BatchLayout, WholeGroupMeans, share_group_means


def _ranks(group_size: int, groups: int, processes: int, per_device_batch: int) -> list[BatchLayout]:
    return [BatchLayout(group_size, groups, processes, per_device_batch, rank=r) for r in range(processes)]


def test_g24_on_16_processes_splits_each_micro_batch_contiguously():
    layouts = _ranks(24, 2, 16, 3)  # 2 groups x 24 = 48 images, 3 a process
    one = layouts[5]
    assert one.spans and one.minibatch_groups == 2 and one.micro_batches == 1 and one.images_per_process == 3
    assert one.rows().tolist() == [15, 16, 17]  # groups span processes: group 0 lies on ranks 0-7
    every = torch.cat([lay.rows() for lay in layouts])
    assert every.tolist() == list(range(48))  # every row owned exactly once
    full = torch.randn(48, 5)
    local = torch.cat([lay.mine(full) for lay in layouts])
    assert torch.equal(one.from_ranks(local), full)  # mine then gather_rows is the identity
    states = torch.randn(3, 48, 2)  # rows along dim 1, as the stacked trajectory states
    moved = torch.cat([lay.mine(states, dim=1) for lay in layouts], 1).movedim(1, 0)
    assert torch.equal(one.from_ranks(moved).movedim(0, 1), states)


def test_several_micro_batches_each_whole_groups_on_every_process():
    layouts = _ranks(24, 6, 16, 3)  # micro-batches of 2 groups (48 images), 3 of them an iteration
    assert layouts[0].micro_batches == 3 and layouts[0].rows().tolist() == [0, 1, 2, 48, 49, 50, 96, 97, 98]
    order = torch.tensor([3, 0, 5, 2, 4, 1])
    minibatches = layouts[0].minibatch_order(order)
    assert [mb.tolist() for mb in minibatches] == [[3, 2], [0, 1], [5, 4]]  # blocks in order of first appearance
    for groups in minibatches:
        rows, seen = [], []
        for lay in layouts:
            idx, pos = lay.minibatch_rows(groups)
            assert len(idx) == lay.per_device_batch
            rows.append(lay.rows()[idx])
            seen.append(pos)
        whole = groups.repeat_interleave(24) * 24 + torch.arange(24).repeat(2)  # the minibatch's rows, laid out
        assert torch.equal(torch.cat(rows)[torch.argsort(torch.cat(seen))], whole)  # each place filled once


def test_dividing_layouts_are_unchanged():
    lay = BatchLayout(group_size=24, groups=48, processes=8, per_device_batch=12, rank=1)
    assert not lay.spans and (lay.block, lay.piece, lay.share) == (24, 3, 3)
    start = torch.arange(48).unsqueeze(1) * 24 + 3
    assert torch.equal(lay.rows(), (start + torch.arange(3)).flatten())  # 3 images of every group
    order = torch.randperm(48, generator=torch.Generator().manual_seed(0))
    minibatches = lay.minibatch_order(order)
    assert torch.equal(torch.cat(minibatches), order) and all(len(mb) == 4 for mb in minibatches)
    idx, pos = lay.minibatch_rows(minibatches[0])
    assert torch.equal(pos, lay.positions(4))  # draws are read where BatchLayout.mine reads them
    assert torch.equal(lay.rows()[idx] // 24, minibatches[0].repeat_interleave(3))
    assert lay.group_reduce is share_group_means
    assert BatchLayout(24, 2, 16, 3).group_reduce == WholeGroupMeans(2)
    assert BatchLayout(24, 2, 1, 48).group_reduce is None


def test_layouts_that_cannot_split_raise_one_line():
    with pytest.raises(ConfigError, match="per_device_batch must be a multiple of 3, got 2") as err:
        BatchLayout(group_size=24, groups=2, processes=16, per_device_batch=2)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="does not divide the 3 groups"):
        BatchLayout(group_size=24, groups=3, processes=16, per_device_batch=3)  # 2-group micro-batches
    with pytest.raises(ConfigError, match="minibatch_groups must be a multiple of 2"):
        BatchLayout.of_minibatches(group_size=24, groups=2, processes=16, minibatch_groups=1)
    assert BatchLayout.of_minibatches(3, 2, 2, 2).per_device_batch == 3  # 6 images, 3 a process


def test_whole_group_means_in_one_process_are_the_means():
    means = torch.tensor([0.5, 2.0])
    assert torch.equal(WholeGroupMeans(4)(means, torch.tensor([1, 3]), torch.tensor([2.0, 1.0])), means)
