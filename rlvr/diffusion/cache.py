"""KV-cached canvas forwards for the diffusion sampler: approximate prefix and dual caches, batched per row.

The uncached sampler runs one full forward over ``[prompt | canvas]`` at every step. With
semi-autoregressive blocks only the current block is decoded, and the keys/values of positions away
from it change little from step to step, so (as in Fast-dLLM) they can be reused:

* ``prefix``: keys/values of every position before the current block come from the last *refresh*
  (a full forward); each step recomputes the window ``[block_start - 1, end)``: the block and the
  masked suffix after it.
* ``dual``: the suffix after the block is reused too; each step recomputes ``[block_start - 1,
  block_end)`` and attends to the cached prefix and suffix.

**The shift.** The token at ``block_start`` is predicted by the hidden state at ``block_start - 1``
(see ``shift_logits``), so that position is always part of the recomputed window and of the kept
logits. (Fast-dLLM feeds the window from ``block_start`` and takes the block's first token from the
refresh pass only, which it cannot re-predict later in the block.)

**Refresh.** A row's cache is rebuilt at its first step in each block and, with ``refresh=k``, every
``k`` steps after. A refresh step is the uncached computation itself (the same full forward, only the
block's logits projected onto the vocabulary), so ``refresh=1`` reproduces the uncached sampler token
for token: the approximation lives only in how often the cache is refreshed.

**Batches.** Everything is per row: rows may sit in different blocks (threshold decoding moves each row
on as soon as its block is full), prompts are left-padded to different lengths (per-row position ids and
padding masks, the bidirectional rule of ``bidirectional_attention_mask`` restricted to the window's
queries), rows that refresh and rows that reuse their cache run as two sub-batches, rows with nothing
to decode are left out, and rows that have finished are dropped from the cache (the batch shrinks).
Window keys/values are written into the cache in place: they are always recomputed before any later
read (the same window at the next step) or replaced by a refresh (a new block).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlvr.diffusion.attention import position_ids_from_mask

__all__ = [
    "WINDOWS",
    "CachedForward",
    "CanvasKV",
    "ForwardStats",
    "dual_window",
    "prefix_window",
    "window_attention_mask",
]


@dataclass
class ForwardStats:
    """What the model was asked to do during one ``generate`` call.

    ``calls``: model forwards; ``rows``: sum of their batch sizes; ``tokens``: sum of batch x query length
    (the part of the cost that scales with tokens); ``refreshes``: rows that ran a full refresh.
    """

    calls: int = 0
    rows: int = 0
    tokens: int = 0
    refreshes: int = 0

    def add(self, batch: int, length: int) -> None:
        self.calls += 1
        self.rows += batch
        self.tokens += batch * length


# --------------------------------------------------------------------------- windows
# (block_starts [c] absolute, N sequence length, block_length) ->
#   idx [c, W] positions recomputed this step (contiguous per row),
#   write [c, W] which of them overwrite the cache (the others only pad the batch's window),
#   keep [c, block_length + 1] window columns of positions block_start - 1 .. block_end - 1.
WindowFn = Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def prefix_window(starts: torch.Tensor, N: int, block: int):
    """``[start - 1, N)`` per row. One shared window ``[min(start) - 1, N)`` serves the batch; a row
    whose block starts later keeps its cached keys/values for the extra leading positions (their
    queries are computed and ignored), so each row sees exactly its own prefix cache."""
    lo = int(starts.min()) - 1
    idx = torch.arange(lo, N, device=starts.device)[None].expand(starts.shape[0], -1)
    write = idx >= (starts - 1)[:, None]
    keep = (starts - 1 - lo)[:, None] + torch.arange(block + 1, device=starts.device)
    return idx, write, keep


def dual_window(starts: torch.Tensor, N: int, block: int):
    """``[start - 1, start + block)`` per row: the block and the position that predicts its first token."""
    offsets = torch.arange(block + 1, device=starts.device)
    idx = (starts - 1)[:, None] + offsets
    keep = offsets[None].expand(starts.shape[0], -1)
    return idx, torch.ones_like(idx, dtype=torch.bool), keep


WINDOWS: dict[str, WindowFn] = {"prefix": prefix_window, "dual": dual_window}


def window_attention_mask(attention_mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The rows ``idx`` of ``bidirectional_attention_mask(attention_mask)``: boolean ``[B, 1, W, N]``,
    query ``idx[b, w]`` sees key ``j`` iff both are real tokens, or ``j`` is the query itself."""
    m = attention_mask.bool()
    keys = torch.arange(m.shape[1], device=m.device)
    both = m.gather(1, idx)[:, :, None] & m[:, None, :]
    return (both | (idx[:, :, None] == keys))[:, None]


# --------------------------------------------------------------------------- the cache
@dataclass
class _Pass:
    """How the attention layers of one forward use the cache."""

    record: bool
    keys: list[torch.Tensor] = field(default_factory=list)  # per layer [c, H_kv, N, D]
    values: list[torch.Tensor] = field(default_factory=list)
    idx: torch.Tensor | None = None  # [c, W] window positions
    write: torch.Tensor | None = None  # [c, W], None = all


class CanvasKV:
    """Per-layer keys/values of the whole sequence for a set of batch rows (``rows``, sorted global
    ids). Implements the one method HF attention layers call, ``update(key, value, layer_idx)``.

    In a *record* pass (a refresh) the layers' keys/values are collected and returned unchanged, so
    the forward is the plain full forward. In a *window* pass the new keys/values of the window
    positions are scattered into the cached ones and the whole sequence is returned as the keys.
    """

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self._pass: _Pass | None = None

    def update(self, key_states, value_states, layer_idx, *args: Any, **kwargs: Any):
        p = self._pass
        if p is None:
            raise RuntimeError("CanvasKV.update called outside a cached forward")
        if p.record:
            p.keys.append(key_states)
            p.values.append(value_states)
            return key_states, value_states
        kb, vb = p.keys[layer_idx], p.values[layer_idx]
        ix = p.idx[:, None, :, None].expand(-1, kb.shape[1], -1, kb.shape[3])
        if p.write is not None:  # keep the cached entries of positions this row does not recompute
            w = p.write[:, None, :, None]
            key_states = torch.where(w, key_states, kb.gather(2, ix))
            value_states = torch.where(w, value_states, vb.gather(2, ix))
        kb.scatter_(2, ix, key_states.to(kb.dtype))
        vb.scatter_(2, ix, value_states.to(vb.dtype))
        return kb, vb

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens before the input, for HF's default position ids: none (a window pass always passes
        explicit position ids; a record pass is a plain full forward)."""
        return 0

    # ---------------------------------------------------------------- row bookkeeping
    def keep_only(self, live: torch.Tensor) -> None:
        """Drop the rows that have finished (``live[row]`` False) so later steps do not copy them."""
        if self.rows is None:
            return
        keep = live[self.rows]
        if bool(keep.all()):
            return
        sel = keep.nonzero().flatten()
        self.rows = self.rows[sel]
        self.keys = [k.index_select(0, sel) for k in self.keys]
        self.values = [v.index_select(0, sel) for v in self.values]

    def store(self, rows: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        """Set the cache of ``rows`` (sorted global ids) to a refresh pass's keys/values."""
        if self.rows is None or (self.rows.numel() == rows.numel() and torch.equal(self.rows, rows)):
            self.rows, self.keys, self.values = rows, keys, values
            return
        members = torch.unique(torch.cat([self.rows, rows]))  # sorted
        if members.numel() == self.rows.numel():  # all already held: overwrite in place
            at = torch.searchsorted(self.rows, rows)
            for kb, vb, k, v in zip(self.keys, self.values, keys, values, strict=True):
                kb.index_copy_(0, at, k)
                vb.index_copy_(0, at, v)
            return
        old_at, new_at = torch.searchsorted(members, self.rows), torch.searchsorted(members, rows)
        merged_k, merged_v = [], []
        for kb, vb, k, v in zip(self.keys, self.values, keys, values, strict=True):
            mk = kb.new_empty((members.numel(), *kb.shape[1:]))
            mv = vb.new_empty((members.numel(), *vb.shape[1:]))
            mk[old_at], mv[old_at] = kb, vb
            mk[new_at], mv[new_at] = k, v
            merged_k.append(mk)
            merged_v.append(mv)
        self.rows, self.keys, self.values = members, merged_k, merged_v

    def view(self, rows: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The cached keys/values of ``rows`` (all held): the cache itself when they are all its rows
        (window writes then land in place), else a copy."""
        if self.rows is None:
            raise RuntimeError("no cached keys/values yet: the first step of a block must refresh")
        if rows.numel() == self.rows.numel():
            return self.keys, self.values
        at = torch.searchsorted(self.rows, rows)
        return [k.index_select(0, at) for k in self.keys], [v.index_select(0, at) for v in self.values]

    def run(self, p: _Pass, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        self._pass = p
        try:
            return fn()
        finally:
            self._pass = None


# --------------------------------------------------------------------------- the forward
class CachedForward:
    """Canvas logits for the sampler from a KV-cached model, per row.

    ``__call__(x, rows, blk, live)`` returns ``(logits [r, block, V], col0 [r])``: aligned logits of
    canvas columns ``col0 + j`` (the current block of each of ``rows``). ``model`` is a ``DiffusionLM``
    (its ``forward`` takes ``past_key_values``/``logits_to_keep`` and applies the shift).
    """

    def __init__(
        self,
        model,
        mode: str,
        attention_mask: torch.Tensor | None,
        prompt_len: int,
        block_length: int,
        refresh: int | None,
        batch: int,
        stats: ForwardStats,
    ):
        if mode not in WINDOWS:
            raise ValueError(f"unknown cache {mode!r}; known: {sorted(['none', *WINDOWS])}")
        if prompt_len < 1:
            raise ValueError(
                "a KV cache needs a prompt of at least one token (it predicts the first canvas token)"
            )
        self.model, self.window = model, WINDOWS[mode]
        self.mask, self.P, self.block = attention_mask, prompt_len, block_length
        self.refresh = refresh
        self.stats = stats
        self.kv = CanvasKV()
        self.pos = None if attention_mask is None else position_ids_from_mask(attention_mask)
        device = attention_mask.device if attention_mask is not None else None
        self.cached_blk = torch.full((batch,), -1, dtype=torch.long, device=device)
        self.since = torch.zeros(batch, dtype=torch.long, device=device)

    def __call__(self, x: torch.Tensor, rows: torch.Tensor, blk: torch.Tensor, live: torch.Tensor):
        if self.cached_blk.device != x.device:
            self.cached_blk, self.since = self.cached_blk.to(x.device), self.since.to(x.device)
        needed = live.clone()
        needed[rows] = True  # without early exit, finished rows still run (their logits go unused)
        self.kv.keep_only(needed)
        b = blk[rows]
        stale = self.cached_blk[rows] != b
        if self.refresh is not None:
            stale |= self.since[rows] >= self.refresh
        starts = self.P + b * self.block
        fresh_rows, reuse_rows = rows[stale], rows[~stale]
        parts = []
        if fresh_rows.numel():
            parts.append(self._refresh(x, fresh_rows, starts[stale]))
        if reuse_rows.numel():
            parts.append(self._window(x, reuse_rows, starts[~stale]))
        if len(parts) == 1:
            logits = parts[0]
        else:
            logits = parts[0].new_empty((rows.numel(), *parts[0].shape[1:]))
            logits[stale], logits[~stale] = parts
        self.cached_blk[rows] = b
        self.since[rows] = torch.where(stale, 1, self.since[rows] + 1)
        return logits, b * self.block

    def _mask_of(self, rows: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        m = self.mask[rows]
        return None if bool(m.all()) else m

    def _refresh(self, x: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """The uncached full forward (recording every layer's keys/values), logits of the block only."""
        keep = (starts - 1)[:, None] + torch.arange(self.block + 1, device=x.device)
        p = _Pass(record=True)
        xr = x[rows]
        mask = self._mask_of(rows)
        logits = self.kv.run(p, lambda: self.model(xr, mask, past_key_values=self.kv, logits_to_keep=keep))
        self.kv.store(rows, p.keys, p.values)
        self.stats.add(rows.numel(), xr.shape[1])
        self.stats.refreshes += rows.numel()
        return logits[:, 1:]  # column 0 predicts block_start - 1 (no predecessor kept)

    def _window(self, x: torch.Tensor, rows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        N = x.shape[1]
        idx, write, keep = self.window(starts, N, self.block)
        keys, values = self.kv.view(rows)
        p = _Pass(record=False, keys=keys, values=values, idx=idx, write=None if bool(write.all()) else write)
        x_win = x[rows].gather(1, idx)
        mask = self._mask_of(rows)
        if mask is None:
            pos, mask4 = idx, None
        else:
            pos, mask4 = self.pos[rows].gather(1, idx), window_attention_mask(mask, idx)
        logits = self.kv.run(
            p, lambda: self.model(x_win, mask4, pos, past_key_values=self.kv, logits_to_keep=keep)
        )
        self.stats.add(rows.numel(), idx.shape[1])
        return logits[:, 1:]
