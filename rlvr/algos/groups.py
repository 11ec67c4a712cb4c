"""What to do with groups whose samples all got the same reward (all pass or all fail).

Such a group has zero advantage for every sample, so it only dilutes the batch. Policies (registry
:data:`ZERO_ADVANTAGE_POLICIES`, chosen by ``algo.zero_advantage``):

* ``substitute`` (Dream-Coder "dynamic filtering"): replace each uninformative group by a copy of a
  randomly chosen (with replacement) informative group, BEFORE advantages; batch size stays constant.
* ``refill`` (DAPO dynamic sampling): keep only informative groups and report how many more groups
  the controller must generate to fill the batch.
* ``none``: keep every group.

All take ``rewards [num_groups, n]`` and return a :class:`GroupSelection` whose ``index`` maps each
output slot to a source group; :func:`group_rows` turns it into row indices of a flat ``[G*n]`` batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rlvr.registry import Registry

__all__ = [
    "GroupSelection",
    "ZERO_ADVANTAGE_POLICIES",
    "informative_groups",
    "solve_metrics",
    "substitute_zero_advantage_groups",
    "refill_groups",
    "select_groups",
    "group_rows",
]


@dataclass
class GroupSelection:
    index: torch.Tensor  # [k] long: source group of each output slot
    needed: int = 0  # groups still to generate (refill only)
    metrics: dict[str, float] = field(default_factory=dict)


def _check(rewards: torch.Tensor) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [num_groups, n], got shape {tuple(rewards.shape)}")


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """``[num_groups]`` bool: the group's rewards are not all equal (so its advantages are not all 0)."""
    _check(rewards)
    return rewards.amax(1) != rewards.amin(1)


def solve_metrics(rewards: torch.Tensor, success_threshold: float = 1.0) -> dict[str, float]:
    """Counts of groups in which no / every / some sample passed (``reward >= success_threshold``),
    ``solve_mean`` (fraction of all samples that passed) and ``num_informative`` (groups whose rewards
    differ, which is what substitution and refill act on; with binary rewards it equals solve_partial)."""
    _check(rewards)
    passed = rewards >= success_threshold
    n_pass = passed.sum(1)
    n = rewards.shape[1]
    return {
        "solve_none": int((n_pass == 0).sum()),
        "solve_all": int((n_pass == n).sum()),
        "solve_partial": int(((n_pass > 0) & (n_pass < n)).sum()),
        "solve_mean": float(passed.float().mean()) if rewards.numel() else 0.0,
        "num_informative": int(informative_groups(rewards).sum()),
    }


def substitute_zero_advantage_groups(
    rewards: torch.Tensor, generator: torch.Generator | None, success_threshold: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dream-Coder's zero-advantage substitution.

    Returns ``index [num_groups]``: ``index[g] = g`` for informative groups; each uninformative group
    gets a source drawn uniformly with replacement from the informative ones (one ``torch.randint``
    call on ``generator``, in group order). When no group is informative everything is kept
    (``index = arange``) and ``metrics["no_informative_groups"] = 1`` says so (that step has no signal).
    Metrics: :func:`solve_metrics` (computed BEFORE substitution) plus ``num_substituted``.
    """
    metrics = solve_metrics(rewards, success_threshold)
    info = informative_groups(rewards).cpu()
    g = rewards.shape[0]
    index = torch.arange(g)
    good = info.nonzero().flatten()
    bad = (~info).nonzero().flatten()
    if good.numel() == 0:
        metrics.update(num_substituted=0, no_informative_groups=1)
        return index, metrics
    if bad.numel():
        gen_device = generator.device if generator is not None else torch.device("cpu")
        pick = torch.randint(good.numel(), (bad.numel(),), generator=generator, device=gen_device).cpu()
        index[bad] = good[pick]
    metrics.update(num_substituted=int(bad.numel()), no_informative_groups=0)
    return index, metrics


def refill_groups(
    rewards: torch.Tensor, target_groups: int, success_threshold: float = 1.0
) -> tuple[torch.Tensor, int, dict[str, float]]:
    """DAPO-style dynamic sampling: keep informative groups (at most ``target_groups``, in order) and
    return ``(kept index [k], needed, metrics)`` with ``needed = target_groups - k`` more groups to
    generate (0 once the batch is full). Call again on the concatenated rewards after generating more."""
    if target_groups < 1:
        raise ValueError(f"target_groups must be >= 1, got {target_groups}")
    metrics = solve_metrics(rewards, success_threshold)
    kept = informative_groups(rewards).cpu().nonzero().flatten()[:target_groups]
    needed = target_groups - kept.numel()
    metrics.update(num_kept=int(kept.numel()), num_needed=int(needed))
    return kept, needed, metrics


ZERO_ADVANTAGE_POLICIES: Registry[Callable[..., GroupSelection]] = Registry("zero-advantage policy")


@ZERO_ADVANTAGE_POLICIES.register("substitute")
def _substitute(rewards, generator=None, target_groups=None, success_threshold=1.0) -> GroupSelection:
    index, metrics = substitute_zero_advantage_groups(rewards, generator, success_threshold)
    return GroupSelection(index, 0, metrics)


@ZERO_ADVANTAGE_POLICIES.register("refill")
def _refill(rewards, generator=None, target_groups=None, success_threshold=1.0) -> GroupSelection:
    index, needed, metrics = refill_groups(rewards, target_groups or rewards.shape[0], success_threshold)
    return GroupSelection(index, needed, metrics)


@ZERO_ADVANTAGE_POLICIES.register("none")
def _keep_all(rewards, generator=None, target_groups=None, success_threshold=1.0) -> GroupSelection:
    return GroupSelection(torch.arange(rewards.shape[0]), 0, solve_metrics(rewards, success_threshold))


def select_groups(
    policy: str,
    rewards: torch.Tensor,
    generator: torch.Generator | None = None,
    target_groups: int | None = None,
    success_threshold: float = 1.0,
) -> GroupSelection:
    """Apply the :data:`ZERO_ADVANTAGE_POLICIES` entry ``policy`` to ``rewards [num_groups, n]``."""
    return ZERO_ADVANTAGE_POLICIES.get(policy)(rewards, generator, target_groups, success_threshold)


def group_rows(index: torch.Tensor, n: int) -> torch.Tensor:
    """Group index ``[k]`` -> row index ``[k*n]`` into a flat batch laid out group by group
    (rows ``g*n .. g*n+n-1`` belong to group ``g``)."""
    return (index[:, None] * n + torch.arange(n, device=index.device)).flatten()
