"""The vLLM baseline's plumbing that needs no vLLM: config validation, the rollout-engine registry, the
sampler -> SamplingParams mapping, the shipped config, and the worker's errors before vLLM starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.grpo.config import GRPOConfig, RolloutCfg
from rlvr.rollout import ROLLOUT_ENGINES, RolloutWorker, VLLMRolloutWorker
from rlvr.rollout.config import SamplerCfg
from rlvr.rollout.vllm_worker import sampling_params_kwargs

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"
AR = ["model.kind=autoregressive", "rollout.engine=vllm", "algo.logprob_estimator=autoregressive"]


def test_engine_registry_is_what_the_config_accepts():
    for name in ROLLOUT_ENGINES:
        assert RolloutCfg(engine=name).engine == name
    with pytest.raises(ValueError, match=r"unknown rollout engine 'sglang'; choose one of \['diffusion', 'vllm'\]"):
        RolloutCfg(engine="sglang")
    assert ROLLOUT_ENGINES["diffusion"].worker is RolloutWorker
    assert ROLLOUT_ENGINES["vllm"].worker is VLLMRolloutWorker
    rc = load_config(GRPOConfig, None, AR + ["rollout.vllm.kv_cache_gib=2"]).rollout
    assert ROLLOUT_ENGINES["diffusion"].extra_kwargs(rc) == {}
    assert ROLLOUT_ENGINES["vllm"].extra_kwargs(rc)["engine"]["kv_cache_gib"] == 2


def test_ar_baseline_config_loads_and_mismatches_name_both_keys():
    cfg = load_config(GRPOConfig, CONFIGS / "tiny" / "grpo_ar_vllm.yaml")
    assert (cfg.model.kind, cfg.rollout.engine, cfg.algo.logprob_estimator) == (
        "autoregressive",
        "vllm",
        "autoregressive",
    )
    assert cfg.rollout.vllm.gpu_memory_utilization == 0.1
    with pytest.raises(ConfigError, match=r"rollout\.engine=vllm does not fit model\.kind=diffusion"):
        load_config(GRPOConfig, None, ["rollout.engine=vllm"])
    with pytest.raises(
        ConfigError, match=r"rollout\.engine=diffusion does not fit model\.kind=autoregressive"
    ):
        load_config(GRPOConfig, None, ["model.kind=autoregressive", "algo.logprob_estimator=autoregressive"])
    with pytest.raises(
        ConfigError, match=r"algo\.logprob_estimator=coupled does not fit model\.kind=autoregressive"
    ):
        load_config(GRPOConfig, None, ["model.kind=autoregressive", "rollout.engine=vllm"])
    with pytest.raises(
        ConfigError, match=r"algo\.logprob_estimator=autoregressive does not fit model\.kind=diffusion"
    ):
        load_config(GRPOConfig, None, ["algo.logprob_estimator=autoregressive"])
    with pytest.raises(ConfigError, match="model.kind"):
        load_config(GRPOConfig, None, ["model.kind=causal"])


def test_sampler_settings_map_onto_sampling_params():
    settings = SamplerCfg(max_new_tokens=12, temperature=0.7, top_p=None, top_k=5).generate_kwargs()
    assert sampling_params_kwargs(settings, [7]) == {
        "max_tokens": 12,
        "temperature": 0.7,
        "top_p": 1.0,  # None: no nucleus filter
        "top_k": 5,
        "stop_token_ids": [7],
        "detokenize": False,
    }
    kw = sampling_params_kwargs({"max_new_tokens": 4, "top_p": 0.9}, [7, 9], eos_penalty=2.5)
    assert (kw["top_p"], kw["top_k"], kw["temperature"]) == (0.9, 0, 1.0)
    assert kw["logit_bias"] == {7: -2.5, 9: -2.5}  # subtracted from the raw EOS logits
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['beam_width'\]"):
        sampling_params_kwargs({"max_new_tokens": 4, "beam_width": 2}, [7])


def _save_tiny(path: Path, diffusion: bool) -> str:
    from rlvr.diffusion import DiffusionLM
    from tests.conftest import make_tiny_qwen

    model = make_tiny_qwen()
    if diffusion:
        DiffusionLM.from_pretrained(model, mask_token_id=63).save_pretrained(path)
    else:
        model.save_pretrained(path)
    return str(path)


def test_worker_refuses_a_diffusion_checkpoint_before_starting_vllm(tmp_path):
    path = _save_tiny(tmp_path / "dlm", diffusion=True)
    with pytest.raises(ValueError, match="is a diffusion checkpoint"):
        VLLMRolloutWorker(path, SamplerCfg(max_new_tokens=4).generate_kwargs())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_worker_says_how_to_get_it(tmp_path):
    path = _save_tiny(tmp_path / "ar", diffusion=False)
    with pytest.raises(ImportError, match="scripts/setup_vllm.sh"):
        VLLMRolloutWorker(path, SamplerCfg(max_new_tokens=4).generate_kwargs())


def test_every_sampler_field_is_either_mapped_or_declared_diffusion_only(monkeypatch):
    from rlvr.rollout import vllm_worker

    mapped = {"max_new_tokens", "temperature", "top_p", "top_k"}
    fields = set(SamplerCfg.model_fields) - {"eos_penalty"}  # eos_penalty is its own argument
    assert fields == mapped | set(vllm_worker.DIFFUSION_ONLY_FIELDS)
    monkeypatch.setattr(vllm_worker, "_warned_ignored", False)
    defaults = SamplerCfg().generate_kwargs()
    with pytest.warns(UserWarning, match=r"diffusion-only sampler field\(s\) \['alg', 'steps'\] are ignored"):
        vllm_worker._warn_ignored({**defaults, "steps": 4, "alg": "origin"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vllm_worker._warn_ignored({**defaults, "steps": 8})  # once per process
