"""A tiny GRPO world without the sandbox: a random tiny diffusion LM, a BPE tokenizer, prompt rows in
the rlvr.data schema, and a cheap deterministic verifier so groups have mixed rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rlvr.rewards.registry import register

from tests.rewards.helpers import code_row


@register("test_even_length")
def even_length(completions, **_):
    """1.0 when the completion has an even number of characters: random policies get mixed groups."""
    return [1.0 if len(c) % 2 == 0 else 0.0 for c in completions]


@register("test_every_third_prompt")
def every_third_prompt(completions, extra_info, **_):
    """Mixed rewards (even length) on prompts whose index is a multiple of 3, 0 on the others: most
    groups carry no signal, which is what DAPO refill is for."""
    return [float(len(c) % 2 == 0) if info["index"] % 3 == 0 else 0.0 for c, info in zip(completions, extra_info, strict=True)]


def _rows(n: int, offset: int = 0) -> list[dict]:
    return [
        code_row([f"assert f{i}(1) == {1 + i}"], entry_point=f"f{i}", prompt=f"Write f{i}(x) returning x + {i}.", index=i)
        for i in range(offset, offset + n)
    ]


@pytest.fixture(scope="session")
def grpo_world(tmp_path_factory) -> dict[str, str]:
    from rlvr.diffusion import DiffusionLM
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("grpo_world")
    texts = [r["prompt"][0]["content"] for r in _rows(200)] + ["def f(x):\n    return x + 1\n"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=320)
    model = build_tiny_qwen2(
        tok,
        seed=0,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    DiffusionLM.from_pretrained(model, tokenizer=tok).save_pretrained(root / "model")
    for name, rows in (("train", _rows(12)), ("heldout", _rows(4, offset=100))):
        Path(root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {
        "model": str(root / "model"),
        "train": str(root / "train.jsonl"),
        "heldout": str(root / "heldout.jsonl"),
    }


def grpo_overrides(world: dict[str, str], out_dir: Path, **extra: object) -> list[str]:
    base = {
        "model.path": world["model"],
        "data.train": world["train"],
        "data.heldout": world["heldout"],
        "data.prompts_per_step": 2,
        "data.max_prompt_length": 64,
        "rollout.n": 4,
        "rollout.micro_batch_size": 8,
        "rollout.sampler.max_new_tokens": 8,
        "rollout.sampler.steps": 4,
        "rollout.sampler.top_p": "null",
        "reward.verifier": "test_even_length",
        "reward.verifier_kwargs": "{}",
        "learner.micro_batch_size": 4,
        "learner.optim.lr": 1e-3,
        "learner.deepspeed.zero_stage": 1,
        "trainer.out_dir": str(out_dir),
        "trainer.total_steps": 2,
        "trainer.save_every": 1,
        "trainer.ray_num_cpus": 4,
        "trainer.ray_object_store_mb": 200,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
