"""Second model copies on a learner rank, loaded once: the frozen reference policy (the KL anchor; the
starting checkpoint) and the behaviour-policy snapshot of one-step off-policy overlap (:func:`copy_weights`).

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

__all__ = ["load_reference", "copy_weights"]


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


@torch.no_grad()
def copy_weights(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """``dst``'s parameters := ``src``'s, shard by shard: under ZeRO-3 both modules are partitioned the same
    way (same shapes, same ranks), so each rank copies its own partitions (``ds_tensor``) and nothing is
    gathered; otherwise the full tensors. The behaviour-policy snapshot of one-step off-policy overlap."""
    pairs = list(zip(src.parameters(), dst.parameters(), strict=True))
    for a, b in pairs:
        ta = a.ds_tensor if hasattr(a, "ds_tensor") else a.data
        tb = b.ds_tensor if hasattr(b, "ds_tensor") else b.data
        if ta.shape != tb.shape:
            raise RuntimeError(f"weight copy: shapes differ ({tuple(ta.shape)} vs {tuple(tb.shape)})")
        tb.copy_(ta)
