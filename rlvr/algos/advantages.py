"""Group-relative advantage estimators (one scalar per sequence, broadcast over its tokens by the loss).

Rewards come either as ``[num_groups, n]`` (row = the n samples of one prompt) or flat ``[M]`` with
``group_ids [M]`` (any integer labels, groups may differ in size). Estimators are registered by name in
:data:`ADVANTAGES` and called through :func:`compute_advantages`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvr.registry import Registry

__all__ = ["ADVANTAGES", "compute_advantages", "group_stats"]

# fn(rewards [M] float64, inverse [M] long in [0, K), K, **options) -> advantages [M]
ADVANTAGES: Registry[Callable[..., torch.Tensor]] = Registry("advantage estimator")


def group_stats(
    rewards: torch.Tensor, inverse: torch.Tensor, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group ``(count [K], mean [K], unbiased std [K])``; the std of a one-sample group is 0."""
    count = torch.zeros(num_groups, dtype=rewards.dtype, device=rewards.device).index_add_(
        0, inverse, torch.ones_like(rewards)
    )
    total = torch.zeros_like(count).index_add_(0, inverse, rewards)
    mean = total / count
    sq = torch.zeros_like(count).index_add_(0, inverse, (rewards - mean[inverse]) ** 2)
    std = (sq / (count - 1).clamp_min(1)).sqrt()
    return count, mean, std


@ADVANTAGES.register("grpo")
def grpo(
    rewards: torch.Tensor,
    inverse: torch.Tensor,
    num_groups: int,
    norm_by_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """GRPO: ``A_i = (r_i - mean_g) / (std_g + eps)`` with the unbiased group std (as ``torch.std``,
    verl and Dream-Coder), or ``r_i - mean_g`` when ``norm_by_std`` is off (Dr. GRPO). A group of one
    sample carries no comparison, so its advantage is 0."""
    _, mean, std = group_stats(rewards, inverse, num_groups)
    adv = rewards - mean[inverse]
    if norm_by_std:
        adv = adv / (std[inverse] + eps)
    return adv


@ADVANTAGES.register("rloo")
def rloo(
    rewards: torch.Tensor,
    inverse: torch.Tensor,
    num_groups: int,
    norm_by_std: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Leave-one-out (RLOO, DiffuCoder's default): ``A_i = r_i - mean_{j != i in g} r_j``, never
    std-normalised (``norm_by_std=True`` is an error: it is almost always a grpo setting carried over by
    mistake, and RLOO's baseline is already unbiased without it). A group of one sample gets 0."""
    if norm_by_std:
        raise ValueError(
            "rloo advantages are not std-normalised: drop norm_by_std (algo.norm_adv_by_std) or use grpo"
        )
    count, mean, _ = group_stats(rewards, inverse, num_groups)
    n = count[inverse]
    total = mean[inverse] * n
    return torch.where(n > 1, rewards - (total - rewards) / (n - 1).clamp_min(1), torch.zeros_like(rewards))


def compute_advantages(
    rewards: torch.Tensor,
    kind: str = "grpo",
    group_ids: torch.Tensor | None = None,
    **options,
) -> torch.Tensor:
    """Advantages with the same shape as ``rewards`` (float32).

    ``rewards [num_groups, n]`` needs no ``group_ids``; flat ``rewards [M]`` needs ``group_ids [M]``.
    ``kind`` names an :data:`ADVANTAGES` entry; ``options`` (``norm_by_std``, ``eps``) go to it, and an
    option given as ``None`` means the estimator's default.
    Statistics are computed in float64 so that identical rewards give exactly zero advantage.
    """
    fn = ADVANTAGES.get(kind)
    options = {k: v for k, v in options.items() if v is not None}
    shape = rewards.shape
    if rewards.dim() == 2:
        if group_ids is not None:
            raise ValueError("rewards of shape [num_groups, n] already define the groups; drop group_ids")
        flat = rewards.reshape(-1)
        inverse = torch.arange(shape[0], device=rewards.device).repeat_interleave(shape[1])
        k = shape[0]
    elif rewards.dim() == 1:
        if group_ids is None:
            raise ValueError("flat rewards [M] need group_ids [M] (or pass rewards as [num_groups, n])")
        if group_ids.shape != shape:
            raise ValueError(f"group_ids shape {tuple(group_ids.shape)} != rewards shape {tuple(shape)}")
        flat = rewards
        uniq, inverse = torch.unique(group_ids, return_inverse=True)
        k = uniq.numel()
    else:
        raise ValueError(f"rewards must be [num_groups, n] or [M], got shape {tuple(shape)}")
    if not torch.isfinite(flat).all():
        bad = (~torch.isfinite(flat)).nonzero().flatten().tolist()
        raise ValueError(f"rewards contain non-finite values at flat positions {bad[:10]}")
    adv = fn(flat.double(), inverse, k, **options)
    return adv.float().reshape(shape)
