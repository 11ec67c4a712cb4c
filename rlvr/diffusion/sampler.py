"""The diffusion sampler: denoise a fully masked canvas after the prompt, a few tokens per step.

Default behaviour is the reference Dream ``diffusion_generate`` (``DreamGenerationMixin`` in Dream's
``generation_utils.py``; ``tests/diffusion/reference_sampler.py`` transcribes it literally and the
parity tests compare the two), token for token in deterministic settings:

* every step runs one full forward over ``[prompt | canvas]`` (aligned logits, see ``shift_logits``);
* the masked positions' logits go through the logits processors, ``/temperature``, top-p, top-k, softmax;
  ``x0`` is the argmax (temperature 0) or a sample, with a per-position confidence from the algorithm;
* ``origin`` reveals each masked position with probability ``1 - s/t``; the confidence algorithms commit
  the ``k`` most confident positions, ``k`` from the step schedule (``timesteps = linspace(1, eps, S+1)``,
  ``k = int(n_mask * (1 - s/t))`` in float32, the last step takes what is left). The reference shares
  one ``k`` across the batch, from the batch-mean mask count (``schedule="reference"``);
  ``schedule="per_row"`` uses each row's own count (identical while rows have equal counts, which is
  always the case without ``threshold``), ``schedule="even"`` spreads the masks evenly (LLaDA).
* no EOS handling: all steps run, pad/eos may appear mid-canvas (the padding penalty is a processor).
* the masked positions' logits are upcast to float32 before the softmax (the reference stays in the
  model dtype; identical in fp32, more accurate confidences in bf16).

Options beyond the reference: semi-autoregressive blocks (``block_length``), confidence-threshold
parallel decoding (``threshold``), per-row seeded generators (``seeds``), a decode-step history,
approximate KV caches (``cache="prefix"|"dual"``, ``cache_refresh``; see ``rlvr.diffusion.cache``) and
per-row early exit (``early_exit``, see ``EARLY_EXITS``). With the defaults (no cache, no early exit)
every step is one full forward over the whole batch, as the reference.

Deliberate differences from the reference, visible only where the reference misbehaves: only canvas
positions are decoded (a mask token inside the prompt stays as it is); ``k`` is clipped to each row's
mask count and the last step takes every remaining mask of each row (the reference takes
``int(mean)``, which re-masks decoded tokens when rows hold different mask counts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from rlvr.diffusion.cache import WINDOWS, CachedForward, ForwardStats
from rlvr.diffusion.model import tail_logits

__all__ = [
    "ALGORITHMS",
    "CACHES",
    "EARLY_EXITS",
    "SCHEDULES",
    "DecodeHistory",
    "EosPenalty",
    "GenerationOutput",
    "LogitsProcessor",
    "filter_top_k",
    "filter_top_p",
    "generate",
]


# --------------------------------------------------------------------------- outputs
@dataclass
class DecodeHistory:
    """When each canvas position was committed.

    ``decode_step[b, j]`` is the step (0-based) at which canvas position ``j`` of row ``b`` received
    its final token, ``-1`` if the model never decoded it: still a mask at the end (the model predicted
    the mask token itself), or filled with padding by ``early_exit="eos"``. ``num_steps`` counts the
    sampler's steps (a step with no row left to decode runs no forward, see ``GenerationOutput.stats``).
    ``snapshots`` (``output_history=True``) holds the canvas ``[B, L]`` after every step, as the
    reference's ``history``.
    """

    decode_step: torch.Tensor
    num_steps: int
    snapshots: list[torch.Tensor] | None = None

    def tokens_per_step(self) -> torch.Tensor:
        """``[B, num_steps]`` number of positions committed at each step."""
        B = self.decode_step.shape[0]
        counts = torch.zeros(B, self.num_steps + 1, dtype=torch.long, device=self.decode_step.device)
        idx = torch.where(self.decode_step >= 0, self.decode_step, self.num_steps)  # -1 -> spare column
        counts.scatter_add_(1, idx, torch.ones_like(idx))
        return counts[:, : self.num_steps]


@dataclass
class GenerationOutput:
    sequences: torch.Tensor  # [B, P + L]: the (left-padded) prompt followed by the canvas
    history: DecodeHistory = field(repr=False)
    stats: ForwardStats = field(default_factory=ForwardStats)  # forwards, rows and tokens the model ran


# --------------------------------------------------------------------------- logits processors
class LogitsProcessor(Protocol):
    """Rewrites the distribution of the masked positions, ``[M, V]``.

    ``stage = "logits"`` processors see raw logits before temperature and filters (as HF processors);
    ``stage = "probs"`` processors see the final probabilities (after temperature, top-p, top-k).
    """

    stage: str

    def __call__(self, scores: torch.Tensor) -> torch.Tensor: ...


class EosPenalty:
    """The padding penalty: make EOS/pad less likely at every masked position.

    Two forms, because the reference's form is unknown (the Hub file was not retrievable; the README
    demos use ``eos_penalty=3.0`` while the maintainer recommends 1e-12 .. 1e-3):

    * ``additive=a``: subtract ``a`` from the raw logits of ``token_ids`` (before temperature, so its
      effect on the distribution is ``a / temperature``);
    * ``factor=f``: multiply the final probabilities of ``token_ids`` by ``f`` and renormalise (after
      temperature and filters, so ``f`` is the exact odds multiplier whatever the temperature).
      ``factor=f`` at temperature 1 equals ``additive=-log(f)``. Since the confidence algorithms read these
      probabilities, EOS-predicting positions are also committed later.
    """

    def __init__(
        self, token_ids: Sequence[int], *, additive: float | None = None, factor: float | None = None
    ):
        if (additive is None) == (factor is None):
            raise ValueError("EosPenalty needs exactly one of additive=... or factor=...")
        if factor is not None and not factor >= 0:
            raise ValueError(f"EosPenalty factor must be >= 0, got {factor}")
        self.token_ids = sorted({int(t) for t in token_ids})
        if not self.token_ids:
            raise ValueError("EosPenalty needs at least one token id")
        self.additive, self.factor = additive, factor
        self.stage = "logits" if additive is not None else "probs"

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        ids = torch.tensor(self.token_ids, device=scores.device)
        if self.additive is not None:
            scores[:, ids] -= self.additive
            return scores
        scores[:, ids] *= self.factor
        return scores / scores.sum(-1, keepdim=True)

    def __repr__(self) -> str:
        how = f"additive={self.additive}" if self.additive is not None else f"factor={self.factor}"
        return f"EosPenalty({self.token_ids}, {how})"


# --------------------------------------------------------------------------- token distribution
def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest prefix (by probability) whose mass reaches ``top_p``.

    A token is dropped when the cumulative mass *before* it already exceeds ``top_p``; the most likely
    token always survives. Dropped logits become the dtype's minimum (as the reference), not -inf.
    """
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    drop_sorted = torch.zeros_like(cum, dtype=torch.bool)
    drop_sorted[..., 1:] = cum[..., :-1] > top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, torch.finfo(logits.dtype).min)


def filter_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep every token whose logit is at least the ``top_k``-th largest (ties at the boundary survive)."""
    kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def token_probs(
    logits: torch.Tensor,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    processors: Sequence[LogitsProcessor] = (),
) -> torch.Tensor:
    """``[M, V]`` logits -> probabilities, in the reference order: processors, temperature, top-p, top-k."""
    for proc in processors:
        if proc.stage == "logits":
            logits = proc(logits)
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = filter_top_p(logits, top_p)
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    for proc in processors:
        if proc.stage == "probs":
            probs = proc(probs)
    return probs


# --------------------------------------------------------------------------- randomness
Generators = list[torch.Generator | None]


def row_generators(
    batch: int, seeds: Sequence[int] | None, generator: torch.Generator | None, device: torch.device
) -> Generators:
    """One generator per row. With ``seeds``, row ``r``'s draws depend only on ``seeds[r]`` and its own
    canvas, never on the other rows of the batch; ``generator`` is shared by all rows; neither means
    torch's global generator."""
    if seeds is not None and generator is not None:
        raise ValueError("pass either seeds=[...] (one per row) or generator=..., not both")
    if seeds is None:
        return [generator] * batch
    if len(seeds) != batch:
        raise ValueError(f"seeds has {len(seeds)} entries but the batch has {batch} rows")
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def draw_tokens(
    probs: torch.Tensor, counts: list[int], sample: bool, gens: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0`` and its probability for ``[M, V]`` rows grouped by batch row (``counts`` rows each).

    Greedy is the argmax; sampling draws each batch row's positions with that row's generator.
    """
    if not sample:
        p_x0, x0 = probs.max(dim=-1)
        return x0, p_x0
    parts = [
        torch.multinomial(p, 1, generator=g).squeeze(-1)
        for p, g in zip(torch.split(probs, counts), gens, strict=True)
        if p.shape[0] > 0
    ]
    x0 = torch.cat(parts) if parts else probs.new_zeros(0, dtype=torch.long)
    return x0, probs.gather(-1, x0[:, None]).squeeze(-1)


# --------------------------------------------------------------------------- algorithms
ConfidenceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (probs [M, V], p(x0) [M]) -> [M]


def _top_margin(probs: torch.Tensor, p_x0: torch.Tensor) -> torch.Tensor:
    top2 = torch.topk(probs, 2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def _neg_entropy(probs: torch.Tensor, p_x0: torch.Tensor) -> torch.Tensor:
    return (probs * torch.log(probs + 1e-10)).sum(-1)  # the reference's epsilon; higher = more certain


# None: the random order of ``origin`` (each masked position revealed with probability 1 - s/t).
ALGORITHMS: dict[str, ConfidenceFn | None] = {
    "origin": None,
    "maskgit_plus": lambda probs, p_x0: p_x0,
    "topk_margin": _top_margin,
    "entropy": _neg_entropy,
}


# --------------------------------------------------------------------------- step schedules
# (n [B] masks left in the row's block, i [B] step within the block, S steps per block,
#  timesteps [S+1] float32) -> k [B] tokens to commit now. Every schedule commits all at i = S-1.
ScheduleFn = Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor]


def _reference_k(
    n_float: torch.Tensor, n: torch.Tensor, i: torch.Tensor, S: int, ts: torch.Tensor
) -> torch.Tensor:
    t, s = ts[i], ts[i + 1]
    k = (n_float * (1 - s / t)).long()  # float32 then truncation, exactly as int(...) in the reference
    return torch.where(i >= S - 1, n, k)


def reference_schedule(n: torch.Tensor, i: torch.Tensor, S: int, ts: torch.Tensor) -> torch.Tensor:
    """Dream: one ``k`` for the whole batch from the batch-mean mask count."""
    return _reference_k(n.sum() / n.shape[0], n, i, S, ts)


def per_row_schedule(n: torch.Tensor, i: torch.Tensor, S: int, ts: torch.Tensor) -> torch.Tensor:
    """Dream's formula with each row's own mask count: a row never depends on its batch."""
    return _reference_k(n.float(), n, i, S, ts)


def even_schedule(n: torch.Tensor, i: torch.Tensor, S: int, ts: torch.Tensor) -> torch.Tensor:
    """LLaDA: masks spread evenly over the steps, the remainder on the first ones (ceil(n / steps left))."""
    left = (S - i).clamp(min=1)
    return (n + left - 1) // left


SCHEDULES: dict[str, ScheduleFn] = {
    "reference": reference_schedule,
    "per_row": per_row_schedule,
    "even": even_schedule,
}


# --------------------------------------------------------------------------- choosing positions
def commit_by_confidence(
    confidence: torch.Tensor, k: torch.Tensor, alg_temp: float | None, gens: Generators, pad_left: int = 0
) -> torch.Tensor:
    """``[B, L]`` commit mask: per row the ``k[r]`` most confident positions (``-inf`` = not eligible),
    or, with ``alg_temp > 0``, ``k[r]`` positions drawn without replacement from softmax(conf/alg_temp).

    ``pad_left``: rank as if the row had that many ``-inf`` columns in front (the reference ranks over
    prompt + canvas), so exact ties break as in the reference. The draws never see the padding, so a
    row's sample does not depend on how long the longest prompt of its batch is.
    """
    commit = torch.zeros_like(confidence, dtype=torch.bool)
    kmax = int(k.max()) if k.numel() else 0
    if kmax == 0:
        return commit
    if not alg_temp:
        padded = F.pad(confidence, (pad_left, 0), value=-torch.inf)
        idx = torch.topk(padded, kmax, dim=-1).indices  # distinct per row, so the scatter is unambiguous
        keep = torch.arange(kmax, device=k.device)[None, :] < k[:, None]
        return torch.zeros_like(padded, dtype=torch.bool).scatter(1, idx, keep)[:, pad_left:]
    weights = torch.softmax(confidence / alg_temp, dim=-1)
    for r, g in enumerate(gens):
        if k[r] > 0:
            commit[r, torch.multinomial(weights[r], int(k[r]), replacement=False, generator=g)] = True
    return commit


def commit_confident(
    conf: torch.Tensor,
    eligible: torch.Tensor,
    k: torch.Tensor,
    counts: torch.Tensor,
    p_x0: torch.Tensor,
    threshold: float | None,
    alg_temp: float | None,
    gens: Generators,
    pad_left: int = 0,
) -> torch.Tensor:
    """The confidence algorithms' choice: the scheduled ``k`` best, and with ``threshold`` at least one
    plus every eligible position whose token probability ``p_x0`` exceeds the threshold."""
    if threshold is None:
        return commit_by_confidence(conf, k, alg_temp, gens, pad_left)
    commit = commit_by_confidence(conf, torch.minimum(k.clamp(min=1), counts), alg_temp, gens, pad_left)
    sure = torch.zeros_like(eligible)
    sure[eligible] = p_x0 > threshold
    return commit | sure


def commit_random(eligible: torch.Tensor, p_transfer: torch.Tensor, gens: Generators) -> torch.Tensor:
    """``origin``: each eligible position of row ``r`` is revealed with probability ``p_transfer[r]``."""
    commit = torch.zeros_like(eligible)
    for r, g in enumerate(gens):
        pos = eligible[r].nonzero().squeeze(-1)
        u = torch.rand(pos.shape[0], generator=g, device=eligible.device)
        commit[r, pos[u < p_transfer[r]]] = True
    return commit


# --------------------------------------------------------------------------- the model call
def canvas_logits(
    model, x: torch.Tensor, attention_mask: torch.Tensor | None, canvas_len: int
) -> torch.Tensor:
    """Aligned logits of the canvas positions, ``[B, L, V]``: one full forward over prompt and canvas.

    The uncached reference computation; cached forwards (``rlvr.diffusion.cache``) replace it. Only the
    canvas' logits (and the one before, the shift's source) go through the output head.
    """
    return tail_logits(model, x, attention_mask, canvas_len)


class UncachedForward:
    """The reference: every step a full forward of ``rows``, logits of the whole canvas (``col0 = 0``)."""

    def __init__(self, model, attention_mask, canvas_len: int, batch: int, stats: ForwardStats):
        self.model, self.mask, self.L, self.B, self.stats = model, attention_mask, canvas_len, batch, stats

    def __call__(self, x: torch.Tensor, rows: torch.Tensor, blk: torch.Tensor, live: torch.Tensor):
        if rows.numel() != self.B:  # early exit left some rows out
            x = x[rows]
            mask = None if self.mask is None else self.mask[rows]
        else:
            mask = self.mask
        self.stats.add(x.shape[0], x.shape[1])
        return canvas_logits(self.model, x, mask, self.L), torch.zeros_like(rows)


CACHES = ("none", *WINDOWS)  # "none": UncachedForward; the others: CachedForward with that window


# --------------------------------------------------------------------------- early exit
# (canvas [B, L], mask_id, stop ids) -> [B, L] positions to fill with padding now, or None.
FillFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor | None]


def eos_tail(canvas: torch.Tensor, mask_id: int, stop_ids: torch.Tensor) -> torch.Tensor:
    """The masks of EOS-terminated rows. A row is EOS-terminated when it holds a decoded stop token
    (EOS or pad) and no mask lies before the first one: under the padding policy (completions end at
    the first stop token; SFT canvases are tail-filled with EOS) nothing left to decode can change it.
    Its remaining masks, all after that token, are returned for filling; decoded tokens are kept."""
    L = canvas.shape[1]
    is_stop = torch.isin(canvas, stop_ids)
    is_mask = canvas == mask_id
    pos = torch.arange(L, device=canvas.device)[None]
    first = torch.where(is_stop.any(1), is_stop.long().argmax(1), L)[:, None]
    terminated = (first < L) & ~(is_mask & (pos < first)).any(1, keepdim=True)
    return terminated & is_mask & (pos > first)


EARLY_EXITS: dict[str, FillFn | None] = {
    # every row runs every forward, as the reference (rows with nothing left only waste compute)
    "none": None,
    # a row with nothing to decode at a step (canvas full, or its block full while others finish theirs)
    # is left out of that step's forward: outputs are unchanged
    "finished": lambda canvas, mask_id, stop_ids: None,
    # also end EOS-terminated rows (see eos_tail): their remaining masks become padding
    "eos": eos_tail,
}


def _check_args(
    alg, schedule, steps, max_new_tokens, block_length, threshold, temperature, top_p, top_k, alg_temp,
    cache, cache_refresh, early_exit,
):  # fmt: skip
    if cache not in CACHES:
        raise ValueError(f"unknown cache {cache!r}; known: {list(CACHES)}")
    if cache_refresh is not None and (cache == "none" or cache_refresh < 1):
        raise ValueError(f"cache_refresh={cache_refresh} needs cache='prefix' or 'dual' and must be >= 1")
    if early_exit not in EARLY_EXITS:
        raise ValueError(f"unknown early_exit {early_exit!r}; known: {sorted(EARLY_EXITS)}")
    if early_exit == "eos" and schedule == "reference":
        raise ValueError(
            "early_exit='eos' needs a per-row schedule ('per_row' or 'even'): the reference schedule shares "
            "one k across the batch, so filling one row's masks would change the other rows"
        )
    if alg not in ALGORITHMS:
        raise ValueError(f"unknown alg {alg!r}; known: {sorted(ALGORITHMS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; known: {sorted(SCHEDULES)}")
    if max_new_tokens < 1 or steps < 1:
        raise ValueError(f"max_new_tokens and steps must be >= 1, got {max_new_tokens} and {steps}")
    if max_new_tokens % block_length:
        raise ValueError(f"max_new_tokens={max_new_tokens} is not a multiple of block_length={block_length}")
    if steps % (max_new_tokens // block_length):
        raise ValueError(
            f"steps={steps} is not divisible by the number of blocks {max_new_tokens // block_length}"
        )
    if threshold is not None and (alg == "origin" or not 0 < threshold <= 1):
        raise ValueError(f"threshold={threshold} needs a confidence alg (not origin) and 0 < threshold <= 1")
    if temperature < 0 or (top_p is not None and not 0 < top_p <= 1) or (top_k is not None and top_k < 1):
        raise ValueError(f"bad sampling settings: temperature={temperature}, top_p={top_p}, top_k={top_k}")
    if alg_temp is not None and alg_temp < 0:
        raise ValueError(f"alg_temp must be >= 0, got {alg_temp}")


def _left_padded_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    if attention_mask is None:
        return None
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids {tuple(input_ids.shape)}"
        )
    m = attention_mask.long()
    # left padding: once a row has a real token, everything after it is real (the canvas follows the prompt)
    bad = (m.cummax(dim=1).values != m).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"attention_mask must be LEFT-padded; rows {bad} have padding after a real token")
    return m


# --------------------------------------------------------------------------- generate
@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_new_tokens: int,
    steps: int,
    alg: str = "origin",
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    alg_temp: float | None = None,
    eps: float = 1e-3,
    block_length: int | None = None,
    threshold: float | None = None,
    schedule: str | None = None,
    logits_processors: Sequence[LogitsProcessor] = (),
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    output_history: bool = False,
    cache: str = "none",
    cache_refresh: int | None = None,
    early_exit: str = "none",
) -> GenerationOutput:
    """Denoise ``max_new_tokens`` masks after each (left-padded) prompt in ``steps`` forward passes.

    ``block_length``: semi-autoregressive blocks decoded left to right, ``steps`` split evenly; masks
    to the right of the current block stay attended but are not decoded. ``threshold``: per row, also
    commit every eligible position whose token probability exceeds it (the schedule's ``k``, at least
    one, is the floor), and stop once every canvas is full; with ``steps = max_new_tokens`` this is
    Fast-dLLM's "at least one per step". Rows then move on to their next block independently.
    ``schedule``: ``"reference"`` (default) or ``"per_row"`` (default when ``threshold`` is set, so that
    rows with different progress do not share a count) or ``"even"``; see the module docstring.
    ``"even"`` with ``steps = max_new_tokens / k`` is a fixed k tokens per step for every row.

    ``cache``: ``"none"`` (the reference: a full forward per step), ``"prefix"`` or ``"dual"`` (KV caches
    rebuilt at each row's first step in a block, see ``rlvr.diffusion.cache``); ``cache_refresh=k``
    also rebuilds every ``k`` steps (1 = every step = the uncached outputs). ``early_exit``:
    ``"none"``, ``"finished"`` or ``"eos"`` (default ``schedule`` then ``"per_row"``), see
    ``EARLY_EXITS``; exact per row with greedy decoding or ``seeds``.
    """
    B, P = input_ids.shape
    L = max_new_tokens
    block_length = block_length or L
    schedule = schedule or ("per_row" if threshold is not None or early_exit == "eos" else "reference")
    _check_args(
        alg, schedule, steps, L, block_length, threshold, temperature, top_p, top_k, alg_temp,
        cache, cache_refresh, early_exit,
    )  # fmt: skip
    confidence_fn, schedule_fn = ALGORITHMS[alg], SCHEDULES[schedule]
    device, mask_id = input_ids.device, model.mask_token_id
    gens = row_generators(B, seeds, generator, device)

    prompt_mask = _left_padded_mask(input_ids, attention_mask)
    full_mask = None if prompt_mask is None else F.pad(prompt_mask, (0, L), value=1)  # the canvas is attended
    x = F.pad(input_ids, (0, L), value=mask_id)
    canvas = x[:, P:]  # a view: writing the canvas writes x
    steps_per_block = steps // (L // block_length)
    timesteps = torch.linspace(1, eps, steps_per_block + 1, device=device)
    block_of = (torch.arange(L, device=device) // block_length)[None, :]
    blk = torch.zeros(B, dtype=torch.long, device=device)  # each row's current block ...
    bstep = torch.zeros(B, dtype=torch.long, device=device)  # ... and its step inside it
    decode_step = torch.full((B, L), -1, dtype=torch.long, device=device)
    snapshots: list[torch.Tensor] | None = [] if output_history else None

    stats = ForwardStats()
    if cache == "none":
        forward = UncachedForward(model, full_mask, L, B, stats)
    else:
        forward = CachedForward(model, cache, full_mask, P, block_length, cache_refresh, B, stats)
    fill_fn, skip_idle = EARLY_EXITS[early_exit], early_exit != "none"
    stop_ids, fill_id = None, None
    if early_exit == "eos":  # the padding policy's tokens: a completion ends at the first of them
        stops = {t for t in (model.eos_token_id, model.pad_token_id) if t is not None}
        if not stops:
            raise ValueError("early_exit='eos' needs a model with an eos_token_id or pad_token_id")
        stop_ids = torch.tensor(sorted(stops), device=device)
        fill_id = model.pad_token_id if model.pad_token_id is not None else model.eos_token_id
    n_blocks = L // block_length
    all_rows = torch.arange(B, device=device)

    ran = 0  # steps actually run (threshold decoding and early exit may stop early)
    for step in range(steps):
        eligible = (canvas == mask_id) & (block_of == blk[:, None])
        if not eligible.any() and (threshold is not None or (skip_idle and not (canvas == mask_id).any())):
            break
        rows = eligible.any(1).nonzero().flatten() if skip_idle else all_rows
        commit = torch.zeros_like(eligible)
        proposal = torch.full((B, L), mask_id, dtype=x.dtype, device=device)
        if rows.numel():
            live = (canvas == mask_id).any(1)
            logits, col0 = forward(x, rows, blk.clamp(max=n_blocks - 1), live)
            cols = col0[:, None] + torch.arange(logits.shape[1], device=device)
            # rows left out have no eligible position, so this keeps the (row, position) order of eligible
            sel = logits[eligible[rows].gather(1, cols)]
            counts = eligible.sum(1)
            probs = token_probs(sel.float(), temperature, top_p, top_k, logits_processors)
            x0, p_x0 = draw_tokens(probs, counts.tolist(), temperature > 0, gens)
            i = bstep.clamp(max=steps_per_block - 1)
            k = torch.minimum(schedule_fn(counts, i, steps_per_block, timesteps), counts)
            if confidence_fn is None:  # origin: random order, each position with probability 1 - s/t
                p_transfer = torch.where(i >= steps_per_block - 1, 1.0, 1 - timesteps[i + 1] / timesteps[i])
                commit = commit_random(eligible, p_transfer, gens)
            else:
                conf = torch.full((B, L), -torch.inf, device=device)
                conf[eligible] = confidence_fn(probs, p_x0)
                commit = commit_confident(
                    conf, eligible, k, counts, p_x0, threshold, alg_temp, gens, pad_left=P
                )
            proposal[eligible] = x0

        commit &= eligible
        canvas[commit] = proposal[commit]
        decode_step[commit] = step
        if fill_fn is not None and (fill := fill_fn(canvas, mask_id, stop_ids)) is not None:
            canvas[fill] = fill_id
        ran += 1
        if snapshots is not None:
            snapshots.append(canvas.clone())

        bstep += 1
        done = bstep >= steps_per_block
        if threshold is not None:  # a row whose block is full moves on at once
            done |= ~((canvas == mask_id) & (block_of == blk[:, None])).any(1)
        blk = torch.where(done, blk + 1, blk)
        bstep = torch.where(done, 0, bstep)

    decode_step[canvas == mask_id] = -1  # predicted the mask token itself: never really decoded
    return GenerationOutput(sequences=x, history=DecodeHistory(decode_step, ran, snapshots), stats=stats)
