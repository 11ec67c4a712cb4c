"""Config sections of the supervised stages (pretraining and SFT): the loop, the model source, the objective."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from rlvr.config import Config
from rlvr.registry import RegistryName

__all__ = ["LoopConfig", "ModelSection", "TinyModelInit", "ObjectiveSection", "Weighting"]

# a rlvr.diffusion.noise.WEIGHT_KINDS name: inverse_t | linear | cart | none
Weighting = Annotated[str, AfterValidator(RegistryName("rlvr.diffusion.noise:WEIGHT_KINDS", "loss weighting"))]


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

    weighting: Weighting = "cart"
    cart_p: float = Field(0.1, gt=0, le=1)  # only used by weighting=cart
    t_min: float = Field(0.0, ge=0, le=1)  # t ~ U(t_min, t_max) per sequence
    t_max: float = Field(1.0, ge=0, le=1)
    normalize: Literal["masked_tokens", "weights", "batch_tokens"] = "masked_tokens"  # sum(w*l)/#masked

    @model_validator(mode="after")
    def _t_range(self) -> ObjectiveSection:
        if self.t_min > self.t_max:
            raise ValueError(f"t_min={self.t_min} > t_max={self.t_max}")
        return self
