"""Config sections shared by every trainer (pretrain, SFT, and later the GRPO learner)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rlvr.config import Config

__all__ = ["OptimConfig", "DeepSpeedSection", "LoopConfig", "ModelSection", "TinyModelInit", "ObjectiveSection"]


class OptimConfig(Config):
    """AdamW + warmup schedule. Defaults follow Dream-Coder's SFT trainer (sft_trainer.yaml)."""

    lr: float = Field(5e-6, gt=0)  # Dream-Coder SFT lr for 7B; tiny models use ~1e-3
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


class LoopConfig(Config):
    """The training loop: length, batch geometry, logging, checkpointing, resume."""

    out_dir: str = "runs/out"
    steps: int = Field(100, ge=1)  # optimizer steps
    micro_batch: int = Field(8, ge=1)  # sequences per forward per rank
    grad_accum: int = Field(1, ge=1)
    seed: int = 0
    log_every: int = Field(1, ge=1)
    save_every: int = Field(0, ge=0)  # optimizer steps between checkpoints; 0 = only at the end
    keep_checkpoints: int = Field(2, ge=1)
    resume: bool = True  # continue from out_dir/checkpoints when one exists
    progress: bool = True
    threads: int = Field(0, ge=0)  # torch intra-op threads on CPU; 0 leaves torch's default


class TinyModelInit(Config):
    """A random Qwen2 built from scratch (vocab comes from the tokenizer)."""

    hidden_size: int = Field(128, ge=8)
    num_hidden_layers: int = Field(4, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(384, ge=8)
    max_position_embeddings: int = Field(512, ge=16)
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelInit:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        return self


class ModelSection(Config):
    """Where the model comes from: an HF causal-LM / DiffusionLM folder, or a fresh tiny Qwen2."""

    path: str | None = None
    init: TinyModelInit | None = None
    tokenizer: str | None = None  # "qwen", a tokenizer folder, or None for the model folder's own
    dtype: Literal["float32", "bfloat16"] = "float32"

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        if (self.path is None) == (self.init is None):
            raise ValueError(
                "set exactly one of model.path (a checkpoint folder) or model.init (a tiny config)"
            )
        if self.init is not None and self.tokenizer is None:
            raise ValueError(
                "model.init needs model.tokenizer ('qwen' or a tokenizer folder) for its vocabulary"
            )
        return self


class ObjectiveSection(Config):
    """The weighted masked-diffusion objective shared by pretraining and SFT (defaults: SFT's CART)."""

    weighting: str = "cart"  # a rlvr.diffusion.noise.WEIGHT_KINDS name: inverse_t | linear | cart | none
    cart_p: float = Field(0.1, gt=0, le=1)  # only used by weighting=cart
    t_min: float = Field(0.0, ge=0, le=1)  # t ~ U(t_min, t_max) per sequence
    t_max: float = Field(1.0, ge=0, le=1)
    normalize: Literal["masked_tokens", "weights", "batch_tokens"] = "masked_tokens"  # sum(w*l)/#masked

    @field_validator("weighting")
    @classmethod
    def _known_weighting(cls, v: str) -> str:
        from rlvr.diffusion.noise import WEIGHT_KINDS

        if v not in WEIGHT_KINDS:
            raise ValueError(f"{v!r} is not one of {list(WEIGHT_KINDS)}")
        return v

    @model_validator(mode="after")
    def _t_range(self) -> ObjectiveSection:
        if self.t_min > self.t_max:
            raise ValueError(f"t_min={self.t_min} > t_max={self.t_max}")
        return self
