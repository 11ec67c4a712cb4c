"""Group stage of a GRPO step: which generated groups train, and their advantages.

* :func:`refill` (``algo.zero_advantage=refill``, DAPO dynamic sampling): generate further rounds of new
  prompt groups until the step holds ``target`` informative groups (rewards not all equal), at most
  ``algo.refill_max_rounds`` extra rounds;
* :func:`select` applies the zero-advantage policy (:data:`rlvr.algos.ZERO_ADVANTAGE_POLICIES`) and
  returns exactly ``target`` slots, each naming its source group;
* :func:`train_batch` turns the selected groups into a :class:`~rlvr.batch.TrainBatch` with group
  advantages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rlvr.algos import compute_advantages, group_rows, informative_groups, response_loss_mask, select_groups
from rlvr.batch import TrainBatch
from rlvr.engine.rng import step_generator
from rlvr.grpo.config import AlgoCfg
from rlvr.grpo.rollout import Scored

__all__ = ["Selection", "refill", "select", "train_batch"]


@dataclass
class Selection:
    index: torch.Tensor  # [target] long: the source group of each training slot
    metrics: dict[str, float] = field(default_factory=dict)


def refill(
    scored: Scored, target: int, more: Callable[[int], Scored], max_rounds: int, pad_id: int
) -> tuple[Scored, dict[str, float]]:
    """Extend ``scored`` with ``more(round)`` (a fresh round of scored groups) until it holds ``target``
    informative groups or ``max_rounds`` extra rounds were generated. Metrics: ``refill_rounds`` and
    ``refill_groups`` (extra groups generated)."""
    first = scored.num_groups
    rounds = 0
    while int(informative_groups(scored.rewards).sum()) < target and rounds < max_rounds:
        scored = scored.extend(more(rounds), pad_id)
        rounds += 1
    return scored, {"refill_rounds": rounds, "refill_groups": scored.num_groups - first}


def select(rewards: torch.Tensor, algo: AlgoCfg, target: int, seed: int, step: int) -> Selection:
    """Exactly ``target`` training slots from the groups of ``rewards [num_groups, n]``.

    ``substitute`` and ``none`` keep the step's shape. ``refill`` keeps the first ``target`` informative
    groups; if the rounds ran out before there were enough, the empty slots take copies of kept
    groups (``refill_short`` of them), and with no informative group at all the step keeps its first
    ``target`` groups (``no_informative_groups = 1``: no signal this step)."""
    sel = select_groups(algo.zero_advantage, rewards, step_generator(seed, step, 1), target_groups=target)
    index, metrics = sel.index, dict(sel.metrics)
    if algo.zero_advantage == "refill":
        short = target - index.numel()
        metrics["refill_short"] = short
        metrics["no_informative_groups"] = int(index.numel() == 0)
        if index.numel() == 0:
            index = torch.arange(target)
        elif short > 0:
            pick = torch.randint(index.numel(), (short,), generator=step_generator(seed, step, 2))
            index = torch.cat([index, index[pick]])
    return Selection(index, metrics)


def train_batch(
    scored: Scored, index: torch.Tensor, algo: AlgoCfg, pad_id: int, eos_id: int | None, seed: int = 0, step: int = 0
) -> tuple[TrainBatch, torch.Tensor]:
    """The rows of the selected groups, with group advantages (computed after selection, so a copied
    group is its own group). Returns ``(batch, advantages [len(index), n])``.

    ``algo.control`` (a run that must not learn from its reward): ``flip_reward`` computes the advantages
    of ``-reward``; ``shuffle_advantages`` permutes them across the whole batch (seeded by step)."""
    n = scored.n
    rows = group_rows(index, n)
    rewards = scored.rewards[index]
    adv = compute_advantages(-rewards if algo.control == "flip_reward" else rewards, algo.advantage,
                             norm_by_std=algo.norm_adv_by_std)
    if algo.control == "shuffle_advantages":
        perm = torch.randperm(adv.numel(), generator=step_generator(seed, step, 3))
        adv = adv.flatten()[perm].view_as(adv)
    resp = scored.rollout.response_ids[rows]
    batch = TrainBatch(
        input_ids=torch.cat([scored.rollout.prompt_ids[rows], resp], 1),
        attention_mask=torch.cat([scored.rollout.prompt_mask[rows], torch.ones_like(resp)], 1),
        response_mask=response_loss_mask(resp, pad_id, eos_id, algo.include_eos_in_loss),
        advantages=adv.flatten(),
        rewards=rewards.flatten(),
        group=index.repeat_interleave(n),
        version=scored.rollout.version,
        decode_step=None if scored.rollout.decode_step is None else scored.rollout.decode_step[rows],
    )
    return batch, adv
