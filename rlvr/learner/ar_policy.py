"""ARPolicy: a plain causal LM with the learner's forward contract, for the autoregressive baseline.

``LearnerRank`` scores responses through ``policy.forward(input_ids, attention_mask) -> logits`` with
``logits[:, j]`` the distribution of token ``j`` (what :class:`rlvr.diffusion.DiffusionLM` returns).
``ARPolicy`` keeps the causal mask and realigns with the project's one shift helper,
:func:`rlvr.diffusion.model.shift_logits`, so the ``autoregressive`` log-prob estimator (one clean copy,
nothing masked) reads the exact ``log p(y_j | x, y_<j)``. Left-padded rows get the position ids of the
unpadded sequence, so a row scores the same whatever shares its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlvr.diffusion.attention import position_ids_from_mask
from rlvr.diffusion.model import load_hf_checkpoint, shift_logits, tail_of

__all__ = ["ARPolicy", "causal_attention_mask"]


def causal_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` 0/1 padding mask -> boolean ``[B, 1, N, N]``: key ``k`` visible to query ``q`` when
    ``k <= q`` and ``k`` is a real token; each pad query also sees itself.

    The diagonal keeps a left pad's softmax finite (a fully masked row gives NaN, which a backward pass
    could turn into NaN gradients as ``NaN * 0``); it changes no real token's output.
    """
    m = attention_mask.bool()
    n = m.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=m.device).tril()
    eye = torch.eye(n, dtype=torch.bool, device=m.device)
    return (causal[None, None] & m[:, None, None, :]) | eye


class ARPolicy(nn.Module):
    """A causal LM whose ``forward`` returns aligned logits (``out[:, j]`` predicts token ``j``)."""

    # read by the learner for masked estimators; an autoregressive policy never writes a mask token
    mask_token_id: int | None = None

    def __init__(self, model: nn.Module, tokenizer: Any = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        cfg = model.config
        if getattr(cfg, "is_causal", True) is False:
            raise ValueError(
                "this checkpoint is configured as a diffusion LM (config.is_causal = false); "
                "an autoregressive policy needs a causal checkpoint"
            )
        eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, list) else cfg.eos_token_id
        self.eos_token_id: int | None = eos
        self.pad_token_id: int | None = cfg.pad_token_id if cfg.pad_token_id is not None else eos

    @classmethod
    def from_pretrained(
        cls, path_or_model: str | Path | nn.Module, torch_dtype: torch.dtype | None = None, **hf_kwargs: Any
    ) -> ARPolicy:
        """Load a Hugging Face causal-LM folder (or wrap a loaded model)."""
        if isinstance(path_or_model, nn.Module):
            return cls(path_or_model)
        return cls(*load_hf_checkpoint(path_or_model, torch_dtype, **hf_kwargs))

    @property
    def config(self) -> Any:
        return self.model.config

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, tail: int | None = None
    ) -> torch.Tensor:
        """Aligned logits ``[B, N, V]`` under the causal mask; ``attention_mask`` is a 0/1 ``[B, N]``
        padding mask (left padding), ``None`` or all ones for none. ``tail=k``: only the last ``k``
        positions' (see :func:`rlvr.diffusion.model.tail_logits`)."""
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None
        inputs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            inputs["attention_mask"] = {"full_attention": causal_attention_mask(attention_mask)}
            inputs["position_ids"] = position_ids_from_mask(attention_mask)
        if tail is not None:
            return tail_of(self.model, tail, input_ids.shape[1], **inputs)
        return shift_logits(self.model(**inputs).logits)
