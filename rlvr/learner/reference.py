"""A frozen reference policy on a learner rank (the KL anchor; the starting checkpoint), loaded once.

Never a ``deepcopy`` of the trained policy: under ZeRO-3 that module's parameters are shards owned by
DeepSpeed, and a copy of them is neither a model nor partitioned. The reference is loaded from the
checkpoint folder again; under ZeRO-3 it is loaded already partitioned (the rank's
``HfDeepSpeedConfig`` is alive) and wrapped by a DeepSpeed engine without an optimizer, whose forward
gathers each layer's shards when it runs (ZeRO-Inference), so a 7B reference costs each of 8 ranks
one eighth of its weights.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["load_reference"]


def load_reference(policy_cls: type, model_path: str, dtype: torch.dtype, ds_config: dict[str, Any]) -> Any:
    """``policy_cls.from_pretrained(model_path)`` frozen in eval mode; DeepSpeed-wrapped under ZeRO-3."""
    ref = policy_cls.from_pretrained(model_path, torch_dtype=dtype)
    ref.model.eval().requires_grad_(False)
    if ds_config.get("zero_optimization", {}).get("stage") == 3:
        import deepspeed

        zero = {k: v for k, v in ds_config["zero_optimization"].items() if not k.startswith("offload_optimizer")}
        cfg = {  # the policy's ZeRO-3 settings (partitioning, persistence threshold), no optimizer
            "train_micro_batch_size_per_gpu": ds_config["train_micro_batch_size_per_gpu"],
            "zero_optimization": zero,
            "bf16": ds_config.get("bf16", {"enabled": False}),
            "steps_per_print": 10**9,
        }
        engine, *_ = deepspeed.initialize(model=ref.model, config=cfg)
        engine.eval()
        ref._ds_engine = engine  # keeps the parameter-gathering hooks alive
        ref.model = engine.module
    return ref
