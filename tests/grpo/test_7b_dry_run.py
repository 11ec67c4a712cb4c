"""A 7B-shaped dry run on CPU: the shipped 7B GRPO config, through the code path a cluster runs, with the
model and the batch shrunk to fit two CPU cores. Kept from the 7B config: ZeRO-3 in bf16 with gradient
checkpointing, colocated placement, blocks of 32 with a prefix-cache sampler, coupled masks with CART,
substitution, the code_tests verifier over sandbox replicas. Kept from a real deployment: Qwen's real
152k-token vocabulary and tokenizer, a released-Dream-format checkpoint folder (loaded without its remote
code). Changed: 2 learner ranks and 2 rollout actors instead of 8 + 8 (CPU, no GPU), a 2-layer width-64
model, 2 prompts x 4 samples, a 32-token canvas, one step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.config import load_config
from rlvr.grpo.config import GRPOConfig
from tests.rewards.helpers import ADD_TESTS, code_row

pytestmark = [pytest.mark.slow, pytest.mark.docker]

CONFIG = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "qwen2.5-coder-7b" / "grpo.yaml"


def test_the_7b_config_runs_one_step_on_cpu_with_the_real_vocabulary(tmp_path, sandbox_url):
    from rlvr.diffusion import DiffusionLM
    from rlvr.diffusion.convert import convert
    from rlvr.grpo.controller import Controller
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import load_tokenizer

    tok = load_tokenizer("qwen")  # Qwen2.5's 151,643-token BPE + specials, <|mask|> included
    model = build_tiny_qwen2(tok, seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    DiffusionLM.from_pretrained(model, tokenizer=tok).save_pretrained(tmp_path / "rlvr_model")
    released = convert(tmp_path / "rlvr_model", tmp_path / "Dream-Coder-tiny", "Dream")  # a Dream folder
    rows = [code_row(ADD_TESTS, prompt=f"Write add(a, b). ({i})", index=i) for i in range(4)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = {
        "model.path": released,
        "data.train": tmp_path / "train.jsonl",
        "data.heldout": "null",  # held-out evaluation is the same rollout path, already exercised
        "data.prompts_per_step": 2,
        "rollout.n": 4,
        "rollout.num_workers": 2,
        "rollout.num_gpus_per_worker": 0,
        "rollout.num_cpus_per_worker": 1,
        "rollout.micro_batch_size": 4,
        "rollout.sampler.max_new_tokens": 32,
        "rollout.sampler.steps": 32,
        "reward.sandbox_urls": f"[{sandbox_url}]",
        "reward.verifier_kwargs": "{mode: binary, allow_unfenced: true}",
        "learner.num_ranks": 2,
        "learner.num_gpus_per_rank": 0,
        "learner.num_cpus_per_rank": 1,
        "learner.micro_batch_size": 4,
        "learner.threads": 1,
        "learner.deepspeed.extra": "{zero_optimization: {stage3_param_persistence_threshold: 0}}",
        "trainer.out_dir": tmp_path / "run",
        "trainer.total_steps": 1,
        "trainer.eval_every": 0,
        "trainer.ray_address": "null",
        "trainer.ray_num_cpus": 4,
        "trainer.ray_object_store_mb": 300,
        "trainer.wandb_project": "null",
    }
    cfg = load_config(GRPOConfig, CONFIG, [f"{k}={v}" for k, v in overrides.items()])
    # what stays the 7B recipe's
    assert (cfg.learner.deepspeed.zero_stage, cfg.learner.deepspeed.bf16, cfg.model.dtype) == (3, True, "bfloat16")
    assert cfg.learner.deepspeed.gradient_checkpointing and cfg.trainer.placement == "colocate"
    assert (cfg.rollout.sampler.block_length, cfg.rollout.sampler.cache) == (32, "prefix")
    assert (cfg.algo.logprob_estimator, cfg.algo.weighting, cfg.algo.zero_advantage) == ("coupled", "cart", "substitute")
    with Controller(cfg) as c:
        summary = c.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] and rows[0]["actor/optimizer_steps"] == 2
    assert sum(v for k, v in rows[0].items() if k.startswith("verdict/")) == pytest.approx(1.0)  # real sandbox
    final = DiffusionLM.from_pretrained(summary["final_model"])
    assert final.model.config.vocab_size == model.config.vocab_size >= 151_643
