"""DiffusionLM: a Hugging Face Qwen2-architecture causal LM used as a masked diffusion LM.

Three things turn an autoregressive checkpoint into a Dream-style diffusion LM:

* attention is fully bidirectional; the only mask is padding ("both positions are real tokens");
* position ids count real tokens (``cumsum(mask) - 1``), so left-padded rows get the same rotary
  positions as unpadded ones;
* the **shift**: the AR checkpoint's hidden state at ``i-1`` predicts token ``i``. :func:`shift_logits`
  is the ONE place that realigns logits; training losses, RL log-probs and the sampler all read
  ``DiffusionLM.forward(...)`` whose logit ``[:, i]`` is the prediction for token ``i``.

The wrapped module stays an ordinary ``Qwen2ForCausalLM``: ``save_pretrained`` writes a plain HF
folder (with ``mask_token_id`` and ``is_causal: false`` in its config) that ``from_pretrained`` reloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlvr.diffusion.attention import bidirectional_attention_mask, position_ids_from_mask

__all__ = [
    "DiffusionLM",
    "MASK_TOKEN",
    "shift_logits",
    "load_hf_checkpoint",
    "tail_logits",
    "tail_of",
]

MASK_TOKEN = "<|mask|>"  # Dream / Dream-Coder's mask token (id 151666 in the Qwen2.5 vocabulary)


def shift_logits(logits: torch.Tensor) -> torch.Tensor:
    """Realign AR-style logits so that ``out[:, i]`` predicts token ``i``.

    ``out[:, i] = logits[:, i-1]`` for ``i >= 1``; position 0 (never a target: it is always prompt
    or padding) keeps ``logits[:, 0]`` so the shape is unchanged. ``logits``: ``[B, N, V]``.
    """
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def tail_logits(forward: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, k: int) -> torch.Tensor:
    """Aligned logits of the last ``k`` positions, ``[B, k, V]``, through ``forward(..., tail=k)``: the
    output head runs on ``k + 1`` positions instead of all ``N``, and no shifted copy is made. At 7B
    this is the difference between logits for the whole prompt + canvas and for the canvas only
    (152k x 4 bytes per position in fp32). ``forward`` is a policy's (``DiffusionLM``, ``ARPolicy``)."""
    return forward(input_ids, attention_mask, tail=k)


def tail_of(model: nn.Module, k: int, n: int, **inputs: Any) -> torch.Tensor:
    """``model(**inputs)``'s AR-style logits turned into aligned logits of the last ``k`` of ``n``
    positions: logit ``i - 1`` predicts token ``i``, so the output head runs on the hidden states of
    positions ``n - k - 1 .. n - 2``. They are made contiguous first: on CPU a bf16 ``linear`` over a
    strided 3-D input (HF's own ``logits_to_keep`` slice) clones the whole head's weight at 8 bytes per
    entry (1.2 GB at Qwen's vocabulary and width 1024) for every call."""
    if k >= n:
        return shift_logits(model(**inputs).logits)[:, -k:]
    hidden = model.get_decoder()(**inputs).last_hidden_state
    return model.get_output_embeddings()(hidden[:, n - k - 1 : n - 1].contiguous())


def load_hf_checkpoint(
    path: str | Path, torch_dtype: torch.dtype | str | None = None, **hf_kwargs: Any
) -> tuple[nn.Module, Any]:
    """A checkpoint folder -> ``(causal LM, tokenizer or None)``; the one loader behind
    :meth:`DiffusionLM.from_pretrained` and the AR baseline's ``ARPolicy.from_pretrained``. Plain Qwen2
    and Dream-family folders, never running a folder's remote code (:mod:`rlvr.diffusion.checkpoints`)."""
    from rlvr.diffusion.checkpoints import load_causal_lm

    return load_causal_lm(path, torch_dtype, **hf_kwargs)


def _embedding_rows(model: nn.Module) -> int:
    """Rows of the input embedding; under ZeRO-3 the local tensor is an empty shard, ``ds_shape`` is real."""
    weight = model.get_input_embeddings().weight
    return int(getattr(weight, "ds_shape", weight.shape)[0])


class DiffusionLM(nn.Module):
    """A bidirectional, shift-aligned view of a causal LM. ``forward`` returns aligned logits."""

    def __init__(self, model: nn.Module, mask_token_id: int, tokenizer: Any = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.mask_token_id = int(mask_token_id)
        cfg = model.config
        vocab = _embedding_rows(model)
        if not 0 <= self.mask_token_id < vocab:
            raise ValueError(f"mask_token_id={self.mask_token_id} is outside the embedding table (size {vocab})")
        cfg.mask_token_id = self.mask_token_id
        cfg.is_causal = False  # transformers then builds bidirectional masks for any other caller too
        for module in model.modules():  # sdpa/flash kernels read the per-layer flag
            if hasattr(module, "is_causal"):
                module.is_causal = False
        eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, list) else cfg.eos_token_id
        self.eos_token_id: int | None = eos
        self.pad_token_id: int | None = cfg.pad_token_id if cfg.pad_token_id is not None else eos

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        path_or_model: str | Path | nn.Module,
        mask_token_id: int | None = None,
        tokenizer: Any = None,
        torch_dtype: torch.dtype | str | None = None,
        **hf_kwargs: Any,
    ) -> DiffusionLM:
        """Load a Qwen2-architecture checkpoint folder (or wrap a loaded model) as a diffusion LM.

        The mask token is taken from, in order: ``mask_token_id``; the checkpoint's
        ``config.mask_token_id``; the tokenizer's ``<|mask|>``. When none exists, ``<|mask|>`` is added to
        the tokenizer and the embeddings grow to hold it (requires a tokenizer).
        """
        if isinstance(path_or_model, nn.Module):
            model = path_or_model
        else:
            model, folder_tokenizer = load_hf_checkpoint(path_or_model, torch_dtype, **hf_kwargs)
            tokenizer = tokenizer if tokenizer is not None else folder_tokenizer
        if mask_token_id is None:
            mask_token_id = getattr(model.config, "mask_token_id", None)
        if mask_token_id is None and tokenizer is not None:
            tid = tokenizer.convert_tokens_to_ids(MASK_TOKEN)
            if tid is not None and tid != tokenizer.unk_token_id:
                mask_token_id = tid
        if mask_token_id is None:
            if tokenizer is None:
                raise ValueError(
                    "no mask token: pass mask_token_id=..., or a tokenizer so that <|mask|> can be added"
                )
            tokenizer.add_special_tokens({"additional_special_tokens": [MASK_TOKEN]})
            mask_token_id = tokenizer.convert_tokens_to_ids(MASK_TOKEN)
        if mask_token_id >= _embedding_rows(model):
            model.resize_token_embeddings(mask_token_id + 1)
        return cls(model, mask_token_id, tokenizer)

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> None:
        """Write an ordinary HF folder (config with ``mask_token_id``; tokenizer when attached)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(path), **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(path))

    # ------------------------------------------------------------------ forward
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        *,
        past_key_values: Any = None,
        logits_to_keep: torch.Tensor | None = None,
        tail: int | None = None,
    ) -> torch.Tensor:
        """Aligned logits ``[B, N, V]``: ``out[:, i]`` is the distribution of token ``i``.

        ``attention_mask`` is a 0/1 padding mask ``[B, N]``; ``None`` (or all ones) means no padding
        and no mask is materialised, as in the reference.

        Optional, for KV-cached decoding (``rlvr.diffusion.cache``); the defaults change nothing:

        * ``attention_mask`` may instead be an already expanded boolean ``[B, 1, Q, K]`` mask (queries
          are ``input_ids``, keys the whole cached sequence); it is used as is and ``position_ids`` must
          then be given.
        * ``past_key_values``: an object with HF's ``update(key, value, layer_idx) -> (keys, values)``,
          called by every attention layer with the new tokens' keys/values.
        * ``logits_to_keep``: ``[B, K]`` input positions (HF semantics) whose logits are computed; the
          shift is then applied over the kept positions, so for positions contiguous in each row
          ``out[:, j]`` (``j >= 1``) predicts the token at ``logits_to_keep[:, j]`` (keep one extra
          leading position).

        ``tail=k``: only the aligned logits of the last ``k`` positions, ``[B, k, V]`` (the loss and the
        sampler need no others; see :func:`tail_logits`).
        """
        if attention_mask is not None and attention_mask.dim() == 4:
            if position_ids is None:
                raise ValueError("a 4-D attention_mask needs explicit position_ids")
            mask4d = attention_mask.bool()
        else:
            if attention_mask is not None and bool(attention_mask.all()):
                attention_mask = None
            if attention_mask is None:
                mask4d = None
            else:
                mask4d = bidirectional_attention_mask(attention_mask)
                if position_ids is None:
                    position_ids = position_ids_from_mask(attention_mask)
        extra: dict[str, Any] = {}
        if past_key_values is not None:
            extra["past_key_values"] = past_key_values
        if logits_to_keep is not None:
            extra["logits_to_keep"] = logits_to_keep
        inputs = dict(
            input_ids=input_ids,
            attention_mask={"full_attention": mask4d},
            position_ids=position_ids,
            use_cache=False,
            **extra,
        )
        if tail is not None:
            return tail_of(self.model, tail, input_ids.shape[1], **inputs)
        return shift_logits(self.model(**inputs).logits)
