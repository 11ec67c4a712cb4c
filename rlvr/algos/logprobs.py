"""Per-token log-probabilities of a diffusion LM's completions, from masked copies of the sequence.

A diffusion LM has no tractable sequence likelihood; RL uses per-token conditionals
``log p(y_i | x_t)`` read from partially masked copies ``x_t`` of ``[prompt | response]``. The masks
are drawn ONCE per PPO epoch, before the old-log-prob pass, and kept in a :class:`MaskedCopies`, so
the old and the new policy score every token under identical inputs and the ratio is well defined.

Estimators (registry :data:`LOGPROB_ESTIMATORS`):

* ``coupled`` (Dream-Coder, default): a complementary pair ``u < t`` / ``u >= t`` over the response
  canvas; every canvas token is masked, hence scored, in exactly one of the two copies.
* ``diffucoder`` (DiffuCoder coupled-GRPO): a fully masked copy plus the pair;
  ``logp_i = (logp0_i + [logp1_i / t if i in copy 1 else logp2_i / (1 - t)]) / 2``.
* ``full_mask`` (d1-style one-step estimate): one copy with the whole response masked.
* ``autoregressive`` (the AR baseline, not a diffusion estimator): one clean copy, nothing masked; a
  causal policy's shifted logits give the exact ``log p(y_i | x, y_<i)`` of every response token.

Layout: ``input_ids [B, L]`` is ``[left-padded prompt | response canvas]`` with the canvas in the last
``R`` columns; all response-side tensors are ``[B, R]``. Copies are stacked copy-major: rows
``k*B:(k+1)*B`` are copy ``k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from rlvr.diffusion.model import tail_logits
from rlvr.diffusion.noise import q_sample, uniform, weights_for
from rlvr.registry import Registry

__all__ = [
    "token_logprobs",
    "token_entropy",
    "coupled_masks",
    "MaskedCopies",
    "LogprobEstimator",
    "LOGPROB_ESTIMATORS",
    "build_masked_copies",
    "estimate_logprobs",
]


# positions per chunk of the vocabulary-wide log-softmax (x vocabulary x 4 bytes of fp32 at a time)
LOGSOFTMAX_CHUNK = 256


def _picked_logprob(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float() / temperature
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _chunks(rows: torch.Tensor, chunk: int):
    """``(b, start, end)`` spans of at most ``chunk`` positions; ``rows[b, start:end]`` is a view."""
    for b in range(rows.shape[0]):
        for s in range(0, rows.shape[1], chunk):
            yield b, s, min(s + chunk, rows.shape[1])


class _ChunkedLogprob(torch.autograd.Function):
    """``log softmax(x / T)[target]`` over ``[B, R, V]`` logits a chunk of positions at a time, in the
    forward and in the backward (``dL/dx = g * (onehot - softmax(x / T)) / T``, written chunk by chunk
    into one gradient tensor): no fp32 copy of the whole logits ever exists and nothing but the logits
    (alive anyway) is saved for backward."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, chunk):
        out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
        with torch.no_grad():
            for b, s, e in _chunks(logits, chunk):
                out[b, s:e] = _picked_logprob(logits[b, s:e], targets[b, s:e], temperature)
        ctx.save_for_backward(logits, targets)
        ctx.temperature, ctx.chunk = temperature, chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        logits, targets = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for b, s, e in _chunks(logits, ctx.chunk):
            g = grad_out[b, s:e].float()
            p = torch.softmax(logits[b, s:e].float() / ctx.temperature, dim=-1)
            part = p.mul_(-g[:, None])
            part[torch.arange(e - s, device=part.device), targets[b, s:e]] += g
            grad[b, s:e] = part.div_(ctx.temperature).to(grad.dtype)
        return grad, None, None, None


def token_logprobs(
    aligned_logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, chunk: int = LOGSOFTMAX_CHUNK
) -> torch.Tensor:
    """``log softmax(logits / temperature)[target]`` per position, float32, shape of ``targets``.

    ``aligned_logits[..., i, :]`` must already predict ``targets[..., i]`` (``DiffusionLM.forward``
    output). Dividing by the rollout temperature scores tokens under the distribution they were
    sampled from (as Dream-Coder does).

    Computed ``chunk`` positions at a time in the forward and the backward (:class:`_ChunkedLogprob`), so
    the fp32 work on the vocabulary (152k x 4 bytes per position at Qwen's) exists for one chunk only.
    Same values and gradients as the one-shot formula."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to score tokens, got {temperature}")
    if aligned_logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(aligned_logits.shape)} do not align with targets {tuple(targets.shape)}"
        )
    if targets.numel() <= chunk:
        return _picked_logprob(aligned_logits, targets, temperature)
    rows = aligned_logits if aligned_logits.dim() == 3 else aligned_logits.reshape(-1, *aligned_logits.shape[-2:])
    tgt = targets if targets.dim() == 2 else targets.reshape(-1, targets.shape[-1])
    return _ChunkedLogprob.apply(rows, tgt, float(temperature), chunk).view(targets.shape)


def token_entropy(aligned_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` per position, float32."""
    logp = torch.log_softmax(aligned_logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def coupled_masks(
    response_mask: torch.Tensor,
    generator: torch.Generator | None,
    shared_across_rows: bool = False,
    t_min: float = 0.0,
    t_max: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Complementary mask pair over the maskable response positions.

    Draws ``t ~ U(t_min, t_max)`` then ``u ~ U(0, 1)`` per position (in that order, from
    ``generator``); ``mask_a = (u < t) & response_mask``, ``mask_b = (u >= t) & response_mask``. Every
    position of ``response_mask`` is in exactly one of the two. ``t [B]`` is the mask ratio of
    ``mask_a`` (``mask_b``'s is ``1 - t``).

    ``shared_across_rows=True`` draws ONE ``t`` and ONE ``u [R]`` and tiles them over all rows, as
    Dream-Coder does per data-parallel worker (all rows masked at the same columns); ``False`` draws
    per row (independent masks, lower-variance gradients, our default).
    """
    if response_mask.dim() != 2:
        raise ValueError(f"response_mask must be [B, R], got shape {tuple(response_mask.shape)}")
    if not 0.0 <= t_min <= t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min <= t_max <= 1, got t_min={t_min}, t_max={t_max}")
    b, r = response_mask.shape
    dev = response_mask.device
    rows = 1 if shared_across_rows else b
    t = t_min + (t_max - t_min) * uniform((rows,), generator, dev)
    u = uniform((rows, r), generator, dev)
    t, u = t.expand(b), u.expand(b, r)
    below = u < t[:, None]
    resp = response_mask.bool()
    return below & resp, ~below & resp, t.contiguous()


@dataclass
class MaskedCopies:
    """The noisy inputs of one PPO epoch: ``K`` copies of each of ``B`` rows, stacked copy-major.

    Built once per epoch by :func:`build_masked_copies` BEFORE the old-log-prob pass and reused, unchanged,
    for the new-policy passes, so old and new log-probs see identical inputs.
    """

    estimator: str
    num_copies: int  # K
    input_ids: torch.Tensor  # [K*B, L] long: prompt | canvas with this copy's positions masked
    attention_mask: torch.Tensor | None  # [K*B, L] or None (no padding)
    targets: torch.Tensor  # [K*B, R] long: the clean response tokens
    scored: torch.Tensor  # [K*B, R] bool: response positions masked (hence predicted) in this copy
    t: torch.Tensor  # [K*B] float: this copy's mask ratio (t, 1 - t, 1 for a fully masked copy)
    weights: (
        torch.Tensor
    )  # [K*B, R] float: per-token loss weight in this copy; 0 unless scored & in loss_mask
    loss_mask: torch.Tensor  # [B, R] bool: tokens that enter the loss
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.loss_mask.shape[0]

    @property
    def response_length(self) -> int:
        return self.loss_mask.shape[1]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> MaskedCopies:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in out.items()}
        return replace(self, **out)


class LogprobEstimator:
    """How to build the masked copies of an epoch and how to turn their per-copy token log-probs
    into one log-prob and one loss weight per response token.

    ``separable``: every token is scored by exactly one copy, so the loss may also be computed copy
    row by copy row (``policy_loss(copy_logp, old_copy_logp, adv.repeat(K), copies.weights)`` with a
    shared denominator) instead of after :meth:`combine`; that lets a learner micro-batch copies freely.
    """

    name = ""
    num_copies = 0
    separable = True
    default_t_range = (0.0, 1.0)
    masks_inputs = True  # False: the copies keep the clean tokens (``scored`` only says what is read)
    copies_setting: str | None = None  # the AlgoCfg field that sets num_copies, where it is a setting
    uses_decode_steps = False  # draw() takes the rollout's decode steps

    def draw(
        self, canvas: torch.Tensor, generator, shared_across_rows: bool, t_min: float, t_max: float
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per copy: the masked canvas positions ``[B, R]`` and the mask ratio ``[B]``."""
        raise NotImplementedError

    def scored_positions(self, masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per copy, the positions whose log-prob it gives: by default every position it masks."""
        return masks

    def with_copies(self, num_copies: int | None) -> LogprobEstimator:
        """This estimator with ``num_copies`` copies where that is a setting (``trace``'s slices)."""
        if num_copies not in (None, self.num_copies):
            raise ValueError(f"log-prob estimator {self.name!r} always uses {self.num_copies} copies")
        return self

    def copy_weights(self, weighting, masks, ts, canvas, loss_mask, cart_p) -> list[torch.Tensor]:
        """Per copy ``[B, R]`` loss weights (zero outside that copy's masked loss tokens)."""
        return [
            weights_for(weighting, t, m, cart_p, canvas) * loss_mask for m, t in zip(masks, ts, strict=True)
        ]

    def combine(self, copies: MaskedCopies, copy_logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``copy_logp [K*B, R]`` -> ``(logp [B, R], weights [B, R])``; both 0 outside the loss mask."""
        k, b, r = copies.num_copies, copies.batch_size, copies.response_length
        if copy_logp.shape != (k * b, r):
            raise ValueError(f"copy_logp must be [K*B, R] = [{k * b}, {r}], got {tuple(copy_logp.shape)}")
        # each token is scored by exactly one copy; torch.where, not a product, so that a -inf log-prob
        # where a copy does not score (or outside the loss) can never become 0 * -inf = NaN
        lp = torch.where(copies.scored, copy_logp, 0.0).view(k, b, r).sum(0)
        w = copies.weights.view(k, b, r).sum(0)
        return torch.where(copies.loss_mask, lp, 0.0), w


LOGPROB_ESTIMATORS: Registry[LogprobEstimator] = Registry("log-prob estimator")


class CoupledEstimator(LogprobEstimator):
    """Dream-Coder: copies ``u < t`` and ``u >= t`` (ratios ``t`` and ``1 - t``). With ``weighting``
    ``cart`` a token's weight is its CART weight in the copy that masked it (context: the canvas);
    with ``inverse_t`` it is ``1/t`` resp. ``1/(1-t)``."""

    name = "coupled"
    num_copies = 2

    def draw(self, canvas, generator, shared_across_rows, t_min, t_max):
        a, b, t = coupled_masks(canvas, generator, shared_across_rows, t_min, t_max)
        return [a, b], [t, 1.0 - t]


class FullMaskEstimator(LogprobEstimator):
    """d1-style one-step estimate: one copy with the whole canvas masked (``t = 1``). No clean context
    is left, so CART would give every token weight 0: the loss weights are the plain loss mask."""

    name = "full_mask"
    num_copies = 1

    def draw(self, canvas, generator, shared_across_rows, t_min, t_max):
        return [canvas.bool().clone()], [torch.ones(canvas.shape[0], device=canvas.device)]

    def copy_weights(self, weighting, masks, ts, canvas, loss_mask, cart_p):
        return [loss_mask.float() * masks[0]]


class DiffuCoderEstimator(LogprobEstimator):
    """DiffuCoder coupled-GRPO: copy 0 fully masked (weight 1), copies 1/2 the complementary pair with
    ``t ~ U(0.2, 0.8)`` (weights ``1/t``, ``1/(1-t)``), combined as
    ``logp_i = (logp0_i + w_k * logpk_i) / 2`` with ``k`` the pair copy that masked ``i``.

    The per-copy weights live inside the log-prob (DiffuCoder's heuristic), so the loss weights are
    the plain loss mask whatever ``weighting`` says (token mean, as DiffuCoder). Not separable: a
    token needs copy 0 and one pair copy together.
    """

    name = "diffucoder"
    num_copies = 3
    separable = False
    default_t_range = (0.2, 0.8)

    def draw(self, canvas, generator, shared_across_rows, t_min, t_max):
        a, b, t = coupled_masks(canvas, generator, shared_across_rows, t_min, t_max)
        return [canvas.bool().clone(), a, b], [torch.ones_like(t), t, 1.0 - t]

    def copy_weights(self, weighting, masks, ts, canvas, loss_mask, cart_p):
        lm = loss_mask.float()
        return [lm * m for m in masks]

    def combine(self, copies, copy_logp):
        b, r = copies.batch_size, copies.response_length
        if copy_logp.shape != (3 * b, r):
            raise ValueError(f"copy_logp must be [3*B, R] = [{3 * b}, {r}], got {tuple(copy_logp.shape)}")
        lp = copy_logp.view(3, b, r)
        scored = copies.scored.view(3, b, r)
        t = copies.t.view(3, b)[1][:, None].clamp(1e-6, 1 - 1e-6)
        pair = torch.where(scored[1], lp[1] / t, lp[2] / (1.0 - t))
        out = 0.5 * (lp[0] + pair)
        return torch.where(copies.loss_mask, out, 0.0), copies.loss_mask.float()


class AutoregressiveEstimator(LogprobEstimator):
    """A causal policy's exact token log-probs: one copy of the clean sequence (no mask token is
    written, so ``mask_token_id`` is unused) with every canvas position scored, weight 1 on each loss
    token whatever ``weighting`` says (a plain token mean, as in autoregressive GRPO)."""

    name = "autoregressive"
    num_copies = 1
    masks_inputs = False

    def draw(self, canvas, generator, shared_across_rows, t_min, t_max):
        return [canvas.bool().clone()], [torch.zeros(canvas.shape[0], device=canvas.device)]

    def copy_weights(self, weighting, masks, ts, canvas, loss_mask, cart_p):
        return [loss_mask.float()]


def trace_slices(decode_step: torch.Tensor, slices: int) -> torch.Tensor:
    """``[B, R]`` slice index in ``0 .. slices - 1`` of each canvas position: the row's decode steps
    ``0 .. S_b - 1`` (``S_b`` = its last decode step + 1) cut into ``slices`` consecutive equal parts.
    A position never decoded (``-1``: padding after an early exit, or a mask left in place) goes last."""
    last = decode_step.max(dim=1, keepdim=True).values.clamp_min(0) + 1
    sl = torch.div(decode_step.clamp_min(0) * slices, last, rounding_mode="floor")
    return torch.where(decode_step >= 0, sl, slices - 1).clamp_max(slices - 1)


class TraceEstimator(LogprobEstimator):
    """Trajectory-aware (TraceRL, arXiv 2509.06949, with its shrinkage): each token is scored under the
    partially decoded canvas of the step at which the sampler decoded it. The rollout's decode steps are
    cut into ``num_copies`` consecutive slices; copy ``j`` shows the tokens decoded in slices ``< j``,
    masks the rest, and scores the tokens of slice ``j``. Every token in exactly one copy (separable),
    weight 1 (a token mean: the canvas, not a noise level, sets the context). Deterministic: no masks are
    drawn, the sampler's own order decides."""

    name = "trace"
    separable = True
    copies_setting = "trace_slices"
    uses_decode_steps = True

    def __init__(self, num_copies: int = 2):
        if num_copies < 1:
            raise ValueError(f"the trace estimator needs at least 1 slice, got {num_copies}")
        self.num_copies = num_copies

    def with_copies(self, num_copies: int | None) -> LogprobEstimator:
        return self if num_copies in (None, self.num_copies) else TraceEstimator(num_copies)

    def draw(self, canvas, generator, shared_across_rows, t_min, t_max, decode_step=None):
        if decode_step is None:
            raise ValueError("the trace log-prob estimator needs the rollout's decode steps (TrainBatch.decode_step)")
        sl = trace_slices(decode_step.to(canvas.device), self.num_copies)
        masks = [(sl >= j) & canvas.bool() for j in range(self.num_copies)]
        size = canvas.float().sum(1).clamp_min(1)
        return masks, [m.float().sum(1) / size for m in masks]

    def scored_positions(self, masks):
        return [m & ~nxt for m, nxt in zip(masks, [*masks[1:], torch.zeros_like(masks[0])], strict=True)]

    def copy_weights(self, weighting, masks, ts, canvas, loss_mask, cart_p):
        return [loss_mask.float() * m for m in masks]


for _est in (CoupledEstimator(), FullMaskEstimator(), DiffuCoderEstimator(), AutoregressiveEstimator(), TraceEstimator()):
    LOGPROB_ESTIMATORS.register(_est.name)(_est)


def build_masked_copies(
    estimator: str,
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    mask_token_id: int | None,
    generator: torch.Generator | None,
    attention_mask: torch.Tensor | None = None,
    canvas_mask: torch.Tensor | None = None,
    shared_across_rows: bool = False,
    weighting: str = "cart",
    cart_p: float = 0.1,
    t_min: float | None = None,
    t_max: float | None = None,
    decode_step: torch.Tensor | None = None,
    num_copies: int | None = None,
) -> MaskedCopies:
    """Draw one PPO epoch's masked copies of ``input_ids [B, L]`` (response canvas = last ``R`` columns).

    Args:
        estimator: a :data:`LOGPROB_ESTIMATORS` name (``coupled``, ``diffucoder``, ``full_mask``,
            ``autoregressive``).
        mask_token_id: written at masked positions; unused (may be ``None``) by ``autoregressive``.
        response_mask: ``[B, R]`` bool, the response tokens that enter the loss (e.g.
            :func:`rlvr.algos.response_loss_mask`).
        canvas_mask: ``[B, R]`` bool, the positions that may be masked; default: the whole canvas,
            trailing EOS/pads included, as Dream-Coder (masking them keeps the response length hidden,
            like at generation time). The prompt is never masked.
        shared_across_rows: one mask pattern for all rows (Dream-Coder) instead of one per row.
        weighting: per-token loss weight, ``cart`` (context: the canvas, so the prompt gives no weight,
            Dream-Coder RL), ``inverse_t``, ``linear`` or ``none``.
        t_min, t_max: range of the pair's ``t``; default per estimator (``coupled``: 0-1, ``diffucoder``:
            0.2-0.8).
        decode_step: ``[B, R]`` the step at which the sampler decoded each canvas position; read by the
            estimators that use it (``trace``), ignored by the others.
        num_copies: copies per row where the estimator takes it as a setting (``trace``: its slices).
    """
    est = LOGPROB_ESTIMATORS.get(estimator).with_copies(num_copies)
    b, seq = input_ids.shape
    if response_mask.dim() != 2 or response_mask.shape[0] != b or response_mask.shape[1] > seq:
        raise ValueError(
            f"response_mask must be [B, R] with B={b}, R <= {seq}; got {tuple(response_mask.shape)}"
        )
    r = response_mask.shape[1]
    loss_mask = response_mask.bool()
    canvas = torch.ones_like(loss_mask) if canvas_mask is None else canvas_mask.bool()
    if canvas.shape != loss_mask.shape:
        raise ValueError(
            f"canvas_mask shape {tuple(canvas.shape)} != response_mask shape {tuple(loss_mask.shape)}"
        )
    if (loss_mask & ~canvas).any():
        raise ValueError(
            "response_mask marks positions outside canvas_mask; those tokens could never be scored"
        )
    lo, hi = est.default_t_range
    steps = {"decode_step": decode_step} if est.uses_decode_steps else {}
    masks, ts = est.draw(
        canvas, generator, shared_across_rows, lo if t_min is None else t_min, hi if t_max is None else t_max, **steps
    )
    scored = est.scored_positions(masks)
    weights = est.copy_weights(weighting, scored, ts, canvas, loss_mask, cart_p)

    prompt_cols = torch.zeros(b, seq - r, dtype=torch.bool, device=input_ids.device)
    full_canvas = torch.cat([prompt_cols, canvas], dim=1)
    if est.masks_inputs and mask_token_id is None:
        raise ValueError(f"log-prob estimator {est.name!r} masks tokens: it needs a mask_token_id")
    noisy = []
    for m in masks:
        if not est.masks_inputs:
            noisy.append(input_ids.clone())
            continue
        x, _, _ = q_sample(input_ids, mask_token_id, full_canvas, t_mask=torch.cat([prompt_cols, m], dim=1))
        noisy.append(x)
    k = est.num_copies
    return MaskedCopies(
        estimator=est.name,
        num_copies=k,
        input_ids=torch.cat(noisy),
        attention_mask=None if attention_mask is None else attention_mask.repeat(k, 1),
        targets=input_ids[:, seq - r :].repeat(k, 1),
        scored=torch.cat(scored),
        t=torch.cat([t.float() for t in ts]),
        weights=torch.cat(weights).float(),
        loss_mask=loss_mask,
        meta={"shared_across_rows": shared_across_rows, "weighting": weighting, "cart_p": cart_p},
    )


def estimate_logprobs(
    forward: Callable[..., torch.Tensor],
    copies: MaskedCopies,
    temperature: float = 1.0,
    micro_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``forward(input_ids, attention_mask, tail=R)`` (aligned logits, e.g. a
    ``DiffusionLM``; only the canvas' logits are computed, see :func:`rlvr.diffusion.model.tail_logits`)
    over the copies and combine them with the copies' estimator.

    Returns ``(logp [B, R], weights [B, R], copy_logp [K*B, R])``; gradients flow when ``forward``
    is called outside ``torch.no_grad``. Only the last ``R`` logit columns are kept per micro-batch.
    """
    n = len(copies)
    step = micro_batch_size or n
    r = copies.response_length
    parts = []
    for s in range(0, n, step):
        am = None if copies.attention_mask is None else copies.attention_mask[s : s + step]
        logits = tail_logits(forward, copies.input_ids[s : s + step], am, r)  # only the canvas' logits
        parts.append(token_logprobs(logits, copies.targets[s : s + step], temperature))
    copy_logp = torch.cat(parts)
    logp, weights = LOGPROB_ESTIMATORS.get(copies.estimator).with_copies(copies.num_copies).combine(copies, copy_logp)
    return logp, weights, copy_logp
