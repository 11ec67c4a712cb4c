"""Group advantages on hand-computed rewards."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algos import ADVANTAGES, compute_advantages

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def test_grpo_exact_numbers_with_unbiased_std():
    adv = compute_advantages(REWARDS, "grpo")
    a0 = 0.5 / (math.sqrt(1 / 3) + 1e-6)  # mean .5, unbiased std sqrt(1/3)
    s2 = 0.5 + 1e-6  # group 2: mean .25, unbiased var (3 * .0625 + .5625) / 3 = .25
    expected = torch.tensor(
        [[a0, -a0, -a0, a0], [0.0, 0.0, 0.0, 0.0], [-0.25 / s2, -0.25 / s2, -0.25 / s2, 0.75 / s2]]
    )
    assert adv.dtype == torch.float32 and adv.shape == REWARDS.shape
    assert torch.allclose(adv, expected, atol=1e-6)
    assert (adv[1] == 0).all()  # identical rewards give exactly 0, not 0/eps noise


def test_grpo_without_std_normalisation():
    adv = compute_advantages(REWARDS, "grpo", norm_by_std=False)
    assert adv.tolist() == [[0.5, -0.5, -0.5, 0.5], [0.0] * 4, [-0.25, -0.25, -0.25, 0.75]]


def test_rloo_leave_one_out():
    adv = compute_advantages(REWARDS, "rloo")
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0.0] * 4, [-1 / 3, -1 / 3, -1 / 3, 1.0]])
    assert torch.allclose(adv, expected, atol=1e-7)
    # never std-normalised: asking for it is an error naming the option; None means "the default"
    with pytest.raises(ValueError, match="norm_adv_by_std"):
        compute_advantages(REWARDS, "rloo", norm_by_std=True)
    assert torch.equal(compute_advantages(REWARDS, "rloo", norm_by_std=None), adv)
    assert torch.equal(compute_advantages(REWARDS, "rloo", norm_by_std=False), adv)


def test_flat_rewards_with_arbitrary_group_ids_and_singletons():
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0, 5.0])
    ids = torch.tensor([7, 3, 7, 3, 11])  # group 11 has one sample
    adv = compute_advantages(rewards, "grpo", group_ids=ids)
    r = 1 / math.sqrt(2)
    # group 7: [1, 0] mean .5 std sqrt(.5); group 3: [0, 2] mean 1 std sqrt(2); both give +-1/sqrt(2)
    assert torch.allclose(adv, torch.tensor([r, -r, -r, r, 0.0]), atol=1e-5)
    loo = compute_advantages(rewards, "rloo", group_ids=ids)
    assert loo.tolist() == [1.0, -2.0, -1.0, 2.0, 0.0]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'.*grpo.*rloo"):
        compute_advantages(REWARDS, "ppo")
    with pytest.raises(ValueError, match="need group_ids"):
        compute_advantages(torch.zeros(4), "grpo")
    with pytest.raises(ValueError, match="non-finite values at flat positions \\[1\\]"):
        compute_advantages(torch.tensor([[0.0, float("nan")]]), "grpo")
    assert ADVANTAGES.names() == ["grpo", "rloo"]
