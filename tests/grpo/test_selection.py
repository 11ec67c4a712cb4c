"""The group stage of a GRPO step on hand-made rewards: DAPO refill rounds, the zero-advantage
policies' slots, and the TrainBatch built from them."""

from __future__ import annotations

import pytest
import torch
from rlvr.rewards import RewardResult

from rlvr.batch import RolloutBatch
from rlvr.config import load_config
from rlvr.grpo.config import AlgoCfg, GRPOConfig
from rlvr.grpo.rollout import Scored
from rlvr.grpo.selection import refill, select, train_batch

PAD, EOS = 0, 1


class Stream:
    rows = [{"prompt": [{"role": "user", "content": f"p{i}"}]} for i in range(20)]


STREAM = Stream()


def scored(group_rewards: list[list[float]], first_prompt: int = 0) -> Scored:
    """Groups of n=2 rows; response of row r is [10 + r, EOS]."""
    g, n = len(group_rewards), len(group_rewards[0])
    rows = g * n
    batch = RolloutBatch(
        prompt_ids=torch.full((rows, 2), 7),
        prompt_mask=torch.ones(rows, 2, dtype=torch.long),
        response_ids=torch.stack([torch.tensor([10 + r, EOS]) for r in range(rows)]),
        group=torch.arange(g).repeat_interleave(n),
        seeds=torch.arange(rows),
    )
    results = [RewardResult(v, {"reason": None if v else "wrong_answer"}) for grp in group_rewards for v in grp]
    prompts = list(range(first_prompt, first_prompt + g))
    return Scored(STREAM, prompts, n, batch, results, [f"c{r}" for r in range(rows)], {"time/generate": 1.0})


def algo(**kw) -> AlgoCfg:
    return AlgoCfg(**kw)


def test_refill_generates_rounds_until_enough_informative_groups():
    rounds = [[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 1.0]]]  # +1 informative per extra round
    calls = []

    def more(r: int) -> Scored:
        calls.append(r)
        return scored(rounds[r], first_prompt=2 + 2 * r)

    out, m = refill(scored([[0.0, 0.0], [1.0, 0.0]]), target=2, more=more, max_rounds=3, pad_id=PAD)
    assert calls == [0] and m == {"refill_rounds": 1, "refill_groups": 2}
    assert out.num_groups == 4 and out.prompt_idx == [0, 1, 2, 3]
    assert out.rewards.tolist() == [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    assert out.rollout.group.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and out.texts[4] == "c0"
    assert out.timing["time/generate"] == 2.0
    # the cap: never more than max_rounds extra rounds, even when still short
    out, m = refill(scored([[0.0, 0.0]]), target=3, more=lambda r: scored([[1.0, 1.0]]), max_rounds=2, pad_id=PAD)
    assert m == {"refill_rounds": 2, "refill_groups": 2} and out.num_groups == 3


def test_select_refill_keeps_target_informative_groups_then_tops_up():
    rewards = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    sel = select(rewards, algo(zero_advantage="refill"), target=2, seed=0, step=0)
    assert sel.index.tolist() == [1, 3] and sel.metrics["refill_short"] == 0
    assert sel.metrics["num_informative"] == 3 and sel.metrics["no_informative_groups"] == 0
    short = select(rewards[:3], algo(zero_advantage="refill"), target=3, seed=0, step=0)
    assert short.index.tolist()[0] == 1 and short.index.tolist()[1:] == [1, 1]  # copies of the one kept
    assert short.metrics["refill_short"] == 2
    none = select(torch.zeros(2, 2), algo(zero_advantage="refill"), target=2, seed=0, step=0)
    assert none.index.tolist() == [0, 1] and none.metrics["no_informative_groups"] == 1


def test_select_substitute_and_none_keep_the_step_shape():
    rewards = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    sub = select(rewards, algo(), target=3, seed=0, step=0)
    assert sub.index.tolist() == [1, 1, 1] and sub.metrics["num_substituted"] == 2
    assert select(rewards, algo(zero_advantage="none"), target=3, seed=0, step=0).index.tolist() == [0, 1, 2]


def test_train_batch_rows_masks_and_advantages_of_the_selected_groups():
    s = scored([[0.0, 0.0], [1.0, 0.0]])
    batch, adv = train_batch(s, torch.tensor([1, 1]), algo(), PAD, EOS)
    assert batch.input_ids.tolist() == [[7, 7, 12, EOS], [7, 7, 13, EOS]] * 2
    assert batch.response_mask.tolist() == [[True, False]] * 4  # EOS is out of the loss (Dream-Coder)
    r = 0.5 / (0.5**0.5 + 1e-6)  # (1 - mean 0.5) / (unbiased std 0.7071 + eps)
    assert adv.flatten().tolist() == pytest.approx([r, -r, r, -r], rel=1e-6)
    assert batch.rewards.tolist() == [1.0, 0.0, 1.0, 0.0] and batch.group.tolist() == [1, 1, 1, 1]


def test_refill_config_and_rloo_std_are_checked_at_load():
    cfg = load_config(GRPOConfig, None, ["algo.zero_advantage=refill", "algo.refill_max_rounds=5"])
    assert cfg.algo.refill_max_rounds == 5
    assert load_config(GRPOConfig).algo.dual_clip is None  # Dream-Coder's loss has no dual clip
    from rlvr.config import ConfigError

    with pytest.raises(ConfigError, match="algo.norm_adv_by_std=true with algo.advantage=rloo"):
        load_config(GRPOConfig, None, ["algo.advantage=rloo", "algo.norm_adv_by_std=true"])
    assert load_config(GRPOConfig, None, ["algo.advantage=rloo"]).algo.norm_adv_by_std is None


def test_controls_flip_or_shuffle_the_advantages_and_keep_the_rewards():
    s = scored([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    index = torch.tensor([0, 1])
    base, adv = train_batch(s, index, AlgoCfg(), PAD, EOS)
    assert torch.allclose(adv, torch.tensor([[0.7071, -0.7071], [-0.7071, 0.7071]]), atol=1e-4)
    flipped, fadv = train_batch(s, index, AlgoCfg(control="flip_reward"), PAD, EOS)
    assert torch.equal(fadv, -adv) and torch.equal(flipped.rewards, base.rewards)
    shuffled, sadv = train_batch(s, index, AlgoCfg(control="shuffle_advantages"), PAD, EOS, seed=0, step=5)
    assert sorted(sadv.flatten().tolist()) == sorted(adv.flatten().tolist())  # a permutation of the same values
    perm = torch.randperm(4, generator=__import__("rlvr.engine.rng", fromlist=["x"]).step_generator(0, 5, 3))
    assert torch.equal(sadv.flatten(), adv.flatten()[perm])
    assert torch.equal(shuffled.advantages, sadv.flatten()) and torch.equal(shuffled.rewards, base.rewards)
    again = train_batch(s, index, AlgoCfg(control="shuffle_advantages"), PAD, EOS, seed=0, step=5)[1]
    assert torch.equal(again, sadv)  # seeded by (seed, step)
