"""The RL math, as pure torch functions (no Ray, no DeepSpeed): advantages, the clipped policy loss,
diffusion log-prob estimators with coupled masks, zero-advantage group handling and reward shaping."""

from rlvr.algos.advantages import ADVANTAGES, compute_advantages, group_stats
from rlvr.algos.groups import (
    ZERO_ADVANTAGE_POLICIES,
    GroupSelection,
    group_rows,
    informative_groups,
    refill_groups,
    select_groups,
    solve_metrics,
    substitute_zero_advantage_groups,
)
from rlvr.algos.logprobs import (
    LOGPROB_ESTIMATORS,
    LogprobEstimator,
    MaskedCopies,
    build_masked_copies,
    coupled_masks,
    estimate_logprobs,
    token_entropy,
    token_logprobs,
)
from rlvr.algos.policy_loss import KL_ESTIMATORS, behaviour_weights, kl_penalty, policy_loss, weighted_mean
from rlvr.algos.shaping import overlong_penalty, response_lengths, response_loss_mask, terminators
from rlvr.registry import Registry

__all__ = [
    "ADVANTAGES",
    "KL_ESTIMATORS",
    "LOGPROB_ESTIMATORS",
    "ZERO_ADVANTAGE_POLICIES",
    "GroupSelection",
    "LogprobEstimator",
    "MaskedCopies",
    "Registry",
    "build_masked_copies",
    "compute_advantages",
    "coupled_masks",
    "estimate_logprobs",
    "group_rows",
    "group_stats",
    "informative_groups",
    "kl_penalty",
    "overlong_penalty",
    "policy_loss",
    "behaviour_weights",
    "refill_groups",
    "response_lengths",
    "response_loss_mask",
    "select_groups",
    "solve_metrics",
    "substitute_zero_advantage_groups",
    "terminators",
    "token_entropy",
    "token_logprobs",
    "weighted_mean",
]
