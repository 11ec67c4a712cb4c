"""Config sections of the DeepSpeed engine, shared by pretraining, SFT and the GRPO learner."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rlvr.config import Config

__all__ = ["OptimConfig", "DeepSpeedSection"]


class OptimConfig(Config):
    """AdamW + warmup schedule. Defaults follow Dream-Coder's SFT trainer (sft_trainer.yaml)."""

    lr: float = Field(5e-6, ge=0)  # Dream-Coder SFT lr for 7B; tiny models use ~1e-3; 0: the no-update control
    betas: tuple[float, float] = (0.9, 0.95)  # reference defaults; beta2 0.95 is steadier for LMs
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)  # 10% linear warmup as in the reference
    schedule: Literal["constant", "cosine", "linear"] = "cosine"  # after warmup
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # floor of cosine/linear decay, as a fraction of lr
    grad_clip: float = Field(1.0, ge=0)  # 0 disables clipping


class DeepSpeedSection(Config):
    """How the model is wrapped by DeepSpeed. Stage 0/1 suit one CPU; stage 3 shards a 7B over GPUs."""

    zero_stage: int = Field(0, ge=0, le=3)
    bf16: bool = False  # works on CPU and GPU; fp16 is not supported on CPU
    offload_optimizer: bool = False  # ZeRO-Offload to CPU: needs DeepSpeed's own (JIT-built) CPU Adam
    gradient_checkpointing: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)  # merged into the generated DS config (expert knobs)
