"""One RL step of PPO updates on a data-parallel shard: the glue between the pure math in
:mod:`rlvr.algos` and a :class:`rlvr.engine.Engine`.

Order of operations (as Dream-Coder's verl fork computes its diffusion policy loss):
1. draw every PPO epoch's masked copies (coupled pairs by default) up front;
2. score them all with the current weights -> old log-probs (no grad);
3. for each epoch and mini-batch: new log-probs on the SAME copies, clipped loss, one optimizer step.

Normalisation: ``L = sum(w * l) / W`` with ``W`` the summed token weight of the whole mini-batch over
all ranks, so micro-batching and sharding do not change the objective. DeepSpeed divides each
micro-loss by the accumulation steps and averages gradients over ranks; we multiply both back.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from typing import Any

import torch

from rlvr.algos import (
    MaskedCopies,
    behaviour_weights,
    build_masked_copies,
    estimate_logprobs,
    kl_penalty,
    policy_loss,
    token_entropy,
)
from rlvr.batch import TrainBatch
from rlvr.metrics import reduce_metrics

__all__ = ["select_copy_rows", "ppo_update", "draw_epoch_copies"]


def select_copy_rows(copies: MaskedCopies, rows: torch.Tensor) -> MaskedCopies:
    """The copies of batch rows ``rows`` (all ``K`` copies of each), keeping the copy-major layout."""
    b, k = copies.batch_size, copies.num_copies
    flat = (torch.arange(k)[:, None] * b + rows[None, :]).flatten()
    out: dict[str, Any] = {}
    for f in fields(copies):
        v = getattr(copies, f.name)
        if f.name == "loss_mask":
            out[f.name] = v[rows]
        elif isinstance(v, torch.Tensor):
            out[f.name] = v[flat]
        else:
            out[f.name] = v
    return replace(copies, **out)


def draw_epoch_copies(
    batch: TrainBatch, algo: Any, mask_token_id: int, epochs: int, generator
) -> list[MaskedCopies]:
    """Each PPO epoch's masked copies, drawn before any old-log-prob pass."""
    num_copies = algo.estimator().num_copies
    return [
        build_masked_copies(
            algo.logprob_estimator,
            batch.input_ids,
            batch.response_mask,
            mask_token_id,
            generator,
            attention_mask=batch.attention_mask,
            shared_across_rows=algo.shared_masks,
            weighting=algo.weighting,
            cart_p=algo.cart_p,
            decode_step=batch.decode_step,
            num_copies=num_copies,
        )
        for _ in range(epochs)
    ]


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


def ppo_update(
    engine: Any,
    forward: Any,
    batch: TrainBatch,
    algo: Any,
    mask_token_id: int,
    generator: torch.Generator,
    micro_batch_size: int,
    temperature: float = 1.0,
    ref_forward: Any = None,
    behaviour_forward: Any = None,
    before_update: Any = None,
    record: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Run ``algo.ppo_epochs x algo.mini_batches`` optimizer steps on this rank's ``batch``.

    ``forward(input_ids, attention_mask) -> aligned logits`` runs the trained module;
    ``behaviour_forward``: the policy that generated ``batch`` when it is not the current one (one-step
    off-policy overlap); its log-probs on the same masked copies give the decoupled objective's importance
    weights (``rlvr.algos.behaviour_weights``, capped at ``algo.behaviour_weight_cap``), the current weights
    stay the proximal policy of the clipped ratio. ``before_update()`` runs after every no-grad pass and
    before the first optimizer step; ``record`` (a dict) receives the per-epoch ``proximal`` and
    ``behaviour`` log-probs, the importance ``weights`` and the ``first_ratio`` (epoch 0, first micro-batch).
    ``engine`` provides ``backward``/``step``/``world_size`` (a :class:`rlvr.engine.Engine`) and must
    be configured with ``grad_accum = micro-batches per mini-batch`` (see :func:`micro_layout`).
    """
    est = algo.estimator()
    epochs = draw_epoch_copies(batch, algo, mask_token_id, algo.ppo_epochs, generator)
    rows_per_micro, n_micro = micro_layout(len(batch), algo.mini_batches, micro_batch_size, est.num_copies)
    adv = batch.advantages.float()

    t0 = time.perf_counter()
    with torch.no_grad():
        old = [estimate_logprobs(forward, c, temperature, micro_batch_size)[0] for c in epochs]
        ref = None
        if algo.kl_coef > 0:
            if ref_forward is None:
                raise ValueError("algo.kl_coef > 0 needs a reference model")
            ref = [estimate_logprobs(ref_forward, c, temperature, micro_batch_size)[0] for c in epochs]
        behav = iw = None
        if behaviour_forward is not None:
            behav = [estimate_logprobs(behaviour_forward, c, temperature, micro_batch_size)[0] for c in epochs]
            iw = [behaviour_weights(o, b, algo.behaviour_weight_cap) for o, b in zip(old, behav, strict=True)]
    if record is not None:
        record.update(proximal=old, behaviour=behav if behav is not None else old, weights=iw)
    if before_update is not None:
        before_update()

    t_old = time.perf_counter() - t0
    parts: list[dict[str, float]] = []
    mb_rows = len(batch) // algo.mini_batches
    for e, copies in enumerate(epochs):
        for m in range(algo.mini_batches):
            rows = torch.arange(m * mb_rows, (m + 1) * mb_rows)
            mb = select_copy_rows(copies, rows)
            # total token weight of this mini-batch over all ranks: the loss denominator
            _, w_all = est.combine(mb, torch.zeros(len(mb), mb.response_length))
            denom = _all_reduce_sum(w_all.sum().detach().float())
            scale = n_micro * engine.world_size  # undo DeepSpeed's 1/grad_accum and rank averaging
            for i in range(n_micro):
                sub_rows = torch.arange(i * rows_per_micro, min((i + 1) * rows_per_micro, mb_rows))
                sub = select_copy_rows(mb, sub_rows)
                entropy_needed = algo.entropy_coef > 0
                logits_cache: list[torch.Tensor] = []

                def fwd(ids, am, _cache=logits_cache, _need=entropy_needed, _r=sub.response_length, **kw):
                    out = forward(ids, am, **kw)
                    if _need:  # keep the canvas logits for the (optional) entropy term
                        _cache.append(out[:, -_r:])
                    return out

                logp, w = estimate_logprobs(fwd, sub, temperature)[:2]
                gidx = rows[sub_rows]
                kl = None if ref is None else kl_penalty(logp, ref[e][gidx], algo.kl_estimator)
                ent = None
                if entropy_needed:
                    ent_copies = token_entropy(torch.cat(logits_cache), temperature)
                    ent = est.combine(sub, ent_copies)[0]
                loss, metrics = policy_loss(
                    logp,
                    old[e][gidx],
                    adv[gidx, None].expand_as(logp),
                    w,
                    clip_low=algo.clip_low,
                    clip_high=algo.clip_high,
                    dual_clip=algo.dual_clip,
                    behaviour_weight=None if iw is None else iw[e][gidx],
                    kl=kl,
                    kl_coef=algo.kl_coef,
                    entropy=ent,
                    entropy_coef=algo.entropy_coef,
                    denominator=denom,
                )
                if record is not None and "first_ratio" not in record:
                    record["first_ratio"] = torch.exp(logp.detach() - old[e][gidx])
                engine.backward(loss * scale)
                engine.step()
                parts.append(metrics)
    steps = algo.ppo_epochs * algo.mini_batches
    out = {f"actor/{k}": v for k, v in reduce_metrics(parts).items()}
    out["actor/pg_loss"] = out.get("actor/pg_loss", 0.0) / steps  # the mean optimizer step's loss
    out["actor/optimizer_steps"] = steps
    out["time/old_logprob"] = t_old
    norm = engine.grad_norm() if hasattr(engine, "grad_norm") else None
    if norm is not None:
        out["actor/grad_norm"] = norm
    return out


def micro_layout(rows: int, mini_batches: int, micro_batch_size: int, num_copies: int) -> tuple[int, int]:
    """``(batch rows per micro-batch, micro-batches per mini-batch)``.

    ``micro_batch_size`` counts forward rows; each batch row costs ``num_copies`` of them.
    """
    if rows % mini_batches:
        raise ValueError(f"{rows} rows on this rank do not split into {mini_batches} mini-batches")
    mb_rows = rows // mini_batches
    per = max(1, micro_batch_size // num_copies)
    return per, -(-mb_rows // per)
