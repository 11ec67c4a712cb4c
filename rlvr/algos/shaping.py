"""Response-side helpers: which canvas tokens enter the loss, response lengths, overlong shaping.

A diffusion rollout fills a fixed canvas of ``R`` slots; the response is what precedes the first
terminator (EOS, or pad when pad differs), and everything after it is EOS/pad filler.
"""

from __future__ import annotations

import torch

__all__ = ["terminators", "response_loss_mask", "response_lengths", "overlong_penalty"]


def terminators(response_ids: torch.Tensor, pad_id: int | None, eos_id: int | None) -> torch.Tensor:
    """``[B, R]`` bool: tokens that end a response (``eos_id`` or ``pad_id``)."""
    if pad_id is None and eos_id is None:
        raise ValueError("need at least one of pad_id / eos_id to find where responses end")
    term = torch.zeros_like(response_ids, dtype=torch.bool)
    for tok in {pad_id, eos_id} - {None}:
        term |= response_ids == tok
    return term


def response_loss_mask(
    response_ids: torch.Tensor, pad_id: int | None, eos_id: int | None, include_eos: bool
) -> torch.Tensor:
    """``[B, R]`` bool: the response tokens that enter the RL loss.

    Tokens before the first terminator (EOS or pad) are in; the first terminator is in iff
    ``include_eos`` (``False`` reproduces Dream-Coder's ``no_loss_on_pad`` with pad = EOS, where RL never
    trains stopping; ``True`` also reinforces *where* the response stops); everything after it
    (EOS/pad filler, or stray tokens after the end) is out. A canvas without a terminator is all in.
    """
    term = terminators(response_ids, pad_id, eos_id)
    seen = term.long().cumsum(-1)
    before = seen == 0
    if not include_eos:
        return before
    return before | (term & (seen == 1))


def response_lengths(
    response_ids: torch.Tensor, pad_id: int | None, eos_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lengths [B], truncated [B])``: tokens before the first terminator, and whether the canvas
    holds no terminator at all (the response did not finish inside the canvas)."""
    term = terminators(response_ids, pad_id, eos_id)
    lengths = (term.long().cumsum(-1) == 0).sum(-1)
    return lengths, ~term.any(-1)


def overlong_penalty(
    lengths: torch.Tensor,
    max_length: int,
    buffer_length: int,
    penalty_factor: float = 1.0,
    truncated: torch.Tensor | None = None,
) -> torch.Tensor:
    """DAPO soft overlong punishment, added to the task reward; ``[B]`` float in ``[-penalty_factor, 0]``.

    With ``L_exp = max_length - buffer_length``: 0 for ``L <= L_exp``, linear
    ``(L_exp - L) / buffer_length * penalty_factor`` inside the buffer, ``-penalty_factor`` for
    ``L > max_length`` or a ``truncated`` response (on a fixed diffusion canvas "too long" means "no
    EOS inside the canvas", see :func:`response_lengths`).
    """
    if not 0 <= buffer_length <= max_length:
        raise ValueError(f"need 0 <= buffer_length <= max_length, got {buffer_length} and {max_length}")
    lengths = lengths.float()
    expected = max_length - buffer_length
    if buffer_length > 0:
        pen = ((expected - lengths) / buffer_length).clamp(-1.0, 0.0)
    else:
        pen = torch.zeros_like(lengths)
    over = lengths > max_length
    if truncated is not None:
        over = over | truncated.bool()
    pen = torch.where(over, torch.full_like(pen, -1.0), pen)
    return pen * penalty_factor
