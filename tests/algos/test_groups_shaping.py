"""Zero-advantage substitution / refill, loss masks and overlong shaping on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from rlvr.algos import (
    compute_advantages,
    group_rows,
    overlong_penalty,
    refill_groups,
    response_lengths,
    response_loss_mask,
    select_groups,
    solve_metrics,
    substitute_zero_advantage_groups,
)

REWARDS = torch.tensor(
    [
        [1.0, 0.0, 1.0, 0.0],  # partial
        [0.0, 0.0, 0.0, 0.0],  # none
        [1.0, 1.0, 1.0, 1.0],  # all
        [0.0, 1.0, 0.0, 0.0],  # partial
        [0.0, 0.0, 0.0, 0.0],  # none
    ]
)


def test_solve_metrics():
    assert solve_metrics(REWARDS) == {
        "solve_none": 2,
        "solve_all": 1,
        "solve_partial": 2,
        "solve_mean": pytest.approx(7 / 20),
        "num_informative": 2,
    }


def test_substitution_exact_indices_with_seeded_generator():
    index, m = substitute_zero_advantage_groups(REWARDS, torch.Generator().manual_seed(0))
    # informative groups [0, 3]; torch.randint(2, (3,), seed 0) = [0, 1, 1] fills slots 1, 2, 4
    assert index.tolist() == [0, 0, 3, 3, 3]
    assert m["num_substituted"] == 3 and m["no_informative_groups"] == 0 and m["solve_none"] == 2
    # same seed, same indices; batch size constant
    again, _ = substitute_zero_advantage_groups(REWARDS, torch.Generator().manual_seed(0))
    assert torch.equal(index, again) and index.numel() == REWARDS.shape[0]
    # the substituted batch: every group informative, rows copied group by group
    new = REWARDS.flatten()[group_rows(index, 4)].view(5, 4)
    assert torch.equal(new[1], REWARDS[0]) and torch.equal(new[4], REWARDS[3])
    adv = compute_advantages(new, "grpo")
    assert torch.equal(adv[1], adv[0]) and (adv.abs().sum(1) > 0).all()


def test_substitution_with_no_informative_group_keeps_all():
    rewards = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    index, m = substitute_zero_advantage_groups(rewards, torch.Generator().manual_seed(0))
    assert index.tolist() == [0, 1]
    assert m["no_informative_groups"] == 1 and m["num_substituted"] == 0 and m["solve_all"] == 1


def test_refill_and_policy_registry():
    kept, needed, m = refill_groups(REWARDS, target_groups=5)
    assert kept.tolist() == [0, 3] and needed == 3 and m["num_kept"] == 2 and m["num_needed"] == 3
    kept, needed, _ = refill_groups(REWARDS, target_groups=1)
    assert kept.tolist() == [0] and needed == 0
    sel = select_groups("refill", REWARDS, target_groups=4)
    assert sel.index.tolist() == [0, 3] and sel.needed == 2
    sel = select_groups("none", REWARDS)
    assert sel.index.tolist() == [0, 1, 2, 3, 4] and sel.needed == 0 and sel.metrics["solve_all"] == 1
    sel = select_groups("substitute", REWARDS, generator=torch.Generator().manual_seed(0))
    assert sel.index.tolist() == [0, 0, 3, 3, 3]
    with pytest.raises(ValueError, match="unknown zero-advantage policy 'drop'"):
        select_groups("drop", REWARDS)


def test_group_rows():
    assert group_rows(torch.tensor([2, 0]), 3).tolist() == [6, 7, 8, 0, 1, 2]


IDS = torch.tensor([[5, 6, 1, 1, 1], [5, 6, 7, 8, 9], [1, 1, 1, 1, 1], [5, 1, 7, 1, 1]])


def test_response_loss_mask_eos_equals_pad():
    T, F = True, False
    assert response_loss_mask(IDS, pad_id=1, eos_id=1, include_eos=False).tolist() == [
        [T, T, F, F, F],
        [T, T, T, T, T],
        [F, F, F, F, F],
        [T, F, F, F, F],  # the stray 7 after the end is not trained
    ]
    assert response_loss_mask(IDS, pad_id=1, eos_id=1, include_eos=True).tolist() == [
        [T, T, T, F, F],
        [T, T, T, T, T],
        [T, F, F, F, F],
        [T, T, F, F, F],
    ]


def test_response_loss_mask_distinct_pad_and_lengths():
    ids = torch.tensor([[5, 2, 0, 0], [5, 6, 0, 0]])  # eos=2, pad=0
    assert response_loss_mask(ids, pad_id=0, eos_id=2, include_eos=True).tolist() == [
        [True, True, False, False],
        [True, True, True, False],
    ]
    lengths, truncated = response_lengths(IDS, pad_id=1, eos_id=1)
    assert lengths.tolist() == [2, 5, 0, 1] and truncated.tolist() == [False, True, False, False]


def test_overlong_penalty_dapo():
    lengths = torch.tensor([6, 7, 8, 10, 3, 11])
    pen = overlong_penalty(lengths, max_length=10, buffer_length=4)
    assert pen.tolist() == [0.0, -0.25, -0.5, -1.0, 0.0, -1.0]
    truncated = torch.tensor([False, False, False, False, True, False])
    pen = overlong_penalty(lengths, 10, 4, penalty_factor=0.5, truncated=truncated)
    assert pen.tolist() == [0.0, -0.125, -0.25, -0.5, -0.5, -0.5]
    assert overlong_penalty(lengths, 10, 0).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="buffer_length"):
        overlong_penalty(lengths, 4, 10)
