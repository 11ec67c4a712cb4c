"""Token-level clipped policy-gradient loss with clip-higher, and per-token KL estimators.

Everything is per token: for diffusion LMs the log-probs are the coupled-mask estimates of
:mod:`rlvr.algos.logprobs` (one per response token and PPO epoch), for AR baselines the usual ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvr.registry import Registry

__all__ = ["policy_loss", "KL_ESTIMATORS", "kl_penalty", "weighted_mean"]

# exp() of a log-ratio beyond this overflows/underflows to meaningless ratios; verl clamps the same way
LOG_RATIO_CLAMP = 20.0

KL_ESTIMATORS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("KL estimator")
# each takes log_ratio = logp - ref_logp (per token) and returns a per-token estimate of KL(pi || ref)
KL_ESTIMATORS.register("k1")(lambda lr: lr)
KL_ESTIMATORS.register("k2")(lambda lr: 0.5 * lr**2)
# k3 (Schulman): exp(-lr) + lr - 1 >= 0, low variance; clamped as verl's low_var_kl
KL_ESTIMATORS.register("k3")(lambda lr: (torch.exp(-lr) + lr - 1).clamp(-10.0, 10.0))


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate by :data:`KL_ESTIMATORS` name (``k1``, ``k2``, ``k3``)."""
    return KL_ESTIMATORS.get(kind)((logp - ref_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))


def weighted_mean(x: torch.Tensor, weights: torch.Tensor, denominator=None) -> torch.Tensor:
    """``sum(w * x) / sum(w)`` (or ``/ denominator`` when given); 0 when there is no weight. A position
    of weight 0 contributes exactly 0 whatever ``x`` holds there (``-inf`` or NaN included)."""
    denom = (
        weights.sum() if denominator is None else torch.as_tensor(denominator, dtype=x.dtype, device=x.device)
    )
    terms = torch.where(weights != 0, weights * x, torch.zeros((), dtype=x.dtype, device=x.device))
    return terms.sum() / denom.clamp_min(1e-12)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    denominator: float | torch.Tensor | None = None,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO/GRPO clipped surrogate with asymmetric clipping (DAPO clip-higher), token-mean aggregated.

    Per token: ``rho = exp(logp - old_logp)``,
    ``l = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))``. A positive-advantage token
    stops pushing once ``rho > 1 + clip_high``; a negative-advantage one once ``rho < 1 - clip_low``.

    ``dual_clip = c`` (> 1; dual-clip PPO, verl's ``clip_ratio_c``) also caps a negative-advantage token's
    loss at ``-A * c``: the plain surrogate is unbounded there, so one token whose ratio explodes
    (e.g. 4e4 after the first epoch moved a rare token) would otherwise own the whole gradient.

    Aggregation (Dream-Coder / DAPO token-mean with weights): ``L = sum(w * l) / sum(w)``, where ``w``
    is the per-token weight (CART, 1/t, or a 0/1 loss mask; ``w = 0`` drops a token). Pass
    ``denominator`` to divide by a fixed number instead (e.g. the token count of the whole mini-batch
    across micro-batches and ranks, which keeps gradients independent of how the batch is split, or the
    token count when ``w = 1/t`` should scale the loss rather than average it, as Dream-Coder's
    non-CART branch does).

    Optional terms, off by default as in Dream-Coder: ``+ kl_coef * mean_w(kl)`` (``kl`` a per-token
    estimate, see :func:`kl_penalty`) and ``- entropy_coef * mean_w(entropy)``.

    Shapes: ``logp``, ``old_logp``, ``weights`` ``[B, R]`` (any matching shape); ``advantages`` ``[B]``
    (broadcast over tokens) or ``[B, R]``. ``old_logp`` is treated as a constant.

    Metrics (floats; fractions and ratio statistics over tokens with ``w > 0``): ``pg_loss``,
    ``clip_frac_low``, ``clip_frac_high``, ``clip_frac``, ``ratio_mean``, ``ratio_min``, ``ratio_max``,
    ``ppo_kl`` (mean of ``old_logp - logp``), ``approx_kl`` (k3 estimate of KL(old || new)), ``num_tokens``
    and, when given, ``kl`` and ``entropy``.
    """
    if logp.shape != old_logp.shape or logp.shape != weights.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and weights "
            f"{tuple(weights.shape)} must have the same shape"
        )
    if not (0.0 <= clip_low < 1.0 and clip_high >= 0.0):
        raise ValueError(
            f"need 0 <= clip_low < 1 and clip_high >= 0, got clip_low={clip_low}, clip_high={clip_high}"
        )
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")
    if advantages.dim() == 1 and logp.dim() == 2:
        advantages = advantages[:, None]
    advantages = advantages.to(logp.dtype).expand_as(logp)
    weights = weights.to(logp.dtype)
    # positions out of the loss (weight 0) may hold anything, -inf log-probs included: replace them
    # before any arithmetic so that neither 0 * inf nor inf - inf can reach the loss or its gradient
    live = weights > 0
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp = torch.where(live, logp, zero)
    old_logp = torch.where(live, old_logp.to(logp.dtype), zero)

    log_ratio = (logp - old_logp.detach()).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    pg_unclipped = -advantages * ratio
    pg_clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg = torch.maximum(pg_unclipped, pg_clipped)
    dual = torch.zeros_like(pg, dtype=torch.bool)
    if dual_clip is not None:
        cap = -advantages * dual_clip
        dual = (advantages < 0) & (pg > cap)
        pg = torch.where(dual, cap, pg)

    pg_loss = weighted_mean(pg, weights, denominator)
    loss = pg_loss
    if kl is not None and kl_coef != 0.0:
        loss = loss + kl_coef * weighted_mean(kl, weights, denominator)
    if entropy is not None and entropy_coef != 0.0:
        loss = loss - entropy_coef * weighted_mean(entropy, weights, denominator)

    with torch.no_grad():
        n = int(live.sum())
        metrics: dict[str, float] = {"pg_loss": float(pg_loss), "num_tokens": n}
        if n:
            r = ratio[live]
            a = advantages[live]
            low = ((a < 0) & (r < 1.0 - clip_low)).float().mean()
            high = ((a > 0) & (r > 1.0 + clip_high)).float().mean()
            lr = log_ratio[live]
            metrics.update(
                clip_frac_low=float(low),
                clip_frac_high=float(high),
                clip_frac=float(low + high),
                clip_frac_dual=float(dual[live].float().mean()),
                ratio_mean=float(r.mean()),
                ratio_min=float(r.min()),
                ratio_max=float(r.max()),
                ppo_kl=float((-lr).mean()),
                approx_kl=float((torch.exp(lr) - 1 - lr).mean()),
            )
            if kl is not None:
                metrics["kl"] = float(kl.detach()[live].float().mean())
            if entropy is not None:
                metrics["entropy"] = float(entropy.detach()[live].float().mean())
        else:
            metrics.update(clip_frac_low=0.0, clip_frac_high=0.0, clip_frac=0.0, clip_frac_dual=0.0)
    return loss, metrics
