"""How a diffusion LM sees a padded batch: position ids that count real tokens, and a bidirectional
attention mask whose only restriction is padding. Shared by the model, the KV caches and the
autoregressive baseline's policy; it imports nothing else from :mod:`rlvr.diffusion`."""

from __future__ import annotations

import torch

__all__ = ["position_ids_from_mask", "bidirectional_attention_mask"]


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` 0/1 padding mask -> position ids counting real tokens; pad positions get 1 (as Dream)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def bidirectional_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` padding mask -> boolean ``[B, 1, N, N]``: ``m_i and m_j``, plus each pad sees itself.

    The diagonal on pad rows keeps softmax finite (a fully masked row would give NaN that could leak
    into weighted losses as ``NaN * 0``); it does not change any real token's output.
    """
    m = attention_mask.bool()
    full = m[:, None, :, None] & m[:, None, None, :]
    eye = torch.eye(m.shape[1], dtype=torch.bool, device=m.device)
    return full | eye
