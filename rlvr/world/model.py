"""The tiny model of the tiny world: a random Qwen2 sized to learn the synthetic tasks on 2 CPU cores."""

from __future__ import annotations

from typing import Any

__all__ = ["tiny_qwen2_config", "build_tiny_qwen2"]


def tiny_qwen2_config(tokenizer: Any, **sizes: Any) -> Any:
    """A ``Qwen2Config`` whose vocabulary and special ids come from ``tokenizer``.

    ``sizes`` are Qwen2Config fields (hidden_size, num_hidden_layers, ...). The vocabulary is
    ``len(tokenizer)`` so the ``<|mask|>`` token added by our tokenizer helpers is already embedded.
    """
    from transformers import Qwen2Config

    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; load it with rlvr.world.tokenizer.load_tokenizer")
    return Qwen2Config(
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,  # Qwen uses no BOS; keep the field valid
        **sizes,
    )


def build_tiny_qwen2(tokenizer: Any, seed: int = 0, **sizes: Any) -> Any:
    """A randomly initialised ``Qwen2ForCausalLM`` (deterministic in ``seed``)."""
    import torch
    from transformers import Qwen2ForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, **sizes))
