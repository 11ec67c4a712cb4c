"""Cross-check of ``rlvr plan``'s activation and logits terms against measured CPU peaks of scaled-down models.

    python benchmarks/plan_check.py [--out benchmarks/results/plan_check.json]

Each case is one learner micro-batch exactly as the GRPO learner runs it (``DiffusionLM`` over a Qwen2 with
Qwen's real 151,936-token vocabulary and small widths, the canvas logits through ``tail_logits``, the chunked
``token_logprobs``, backward), with HF gradient checkpointing on or off, in fp32 or bf16, each in a fresh
process. The measured figure is the peak RSS during the step (VmHWM, reset before the step) minus the RSS
before it; the embedding and the
output head are frozen so the figure holds activations and logits (plus the decoder layers' own gradients,
which the prediction adds as ``layer params x bytes``). The prediction is the plan's learner train phase
(``rlvr.plan.learner_peak_bytes``). Sampler cases: one ``generate`` call (prefix cache in blocks of 32, or
uncached) against the plan's KV cache + sampler forward + sampler logits. Target: every case within 15%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)
VOCAB = 151_936

# (name, hidden, intermediate, layers, heads, kv_heads, rows, prompt, canvas, dtype, checkpointing)
CASES = [
    ("H256 L4 ckpt fp32", 256, 1024, 4, 4, 2, 4, 128, 512, "float32", True),
    ("H256 L4 ckpt bf16", 256, 1024, 4, 4, 2, 4, 128, 512, "bfloat16", True),
    ("H512 L2 ckpt bf16 long", 512, 2816, 2, 8, 2, 2, 256, 768, "bfloat16", True),
    ("H768 L6 ckpt bf16 short canvas", 768, 4096, 6, 12, 2, 4, 512, 128, "bfloat16", True),
    ("H256 L4 no-ckpt fp32", 256, 1024, 4, 4, 2, 4, 128, 512, "float32", False),
    ("H512 L4 no-ckpt bf16", 512, 2816, 4, 8, 2, 2, 256, 512, "bfloat16", False),
]


# sampler: (name, hidden, intermediate, layers, heads, kv_heads, rows, prompt, canvas, dtype, block, cache)
SAMPLER_CASES = [
    ("sampler H256 L4 prefix cache fp32", 256, 1024, 4, 4, 2, 8, 128, 256, "float32", 32, "prefix"),
    ("sampler H512 L4 prefix cache bf16", 512, 2816, 4, 8, 2, 8, 256, 256, "bfloat16", 32, "prefix"),
    ("sampler H256 L4 no cache fp32", 256, 1024, 4, 4, 2, 4, 128, 256, "float32", None, "none"),
]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, so building the model (in fp32, then
    cast) does not set the high-water mark the step is measured by."""
    Path("/proc/self/clear_refs").write_text("5")


def _shape(case):
    from rlvr.plan import ModelShape

    _, h, i, layers, heads, kv, *_ = case
    return ModelShape(VOCAB, h, layers, heads, kv, h // heads, i, tied=False)


def _predict_sampler(case) -> int:
    from types import SimpleNamespace

    from rlvr.plan import sampler_terms

    shape = _shape(case)
    *_, rows, prompt, canvas, dtype, block, cache = case
    b = 2 if dtype == "bfloat16" else 4
    terms = sampler_terms(shape, rows, prompt, canvas, SimpleNamespace(block_length=block, cache=cache), b)
    return sum(terms.values())


def _measure_sampler(case) -> float:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.diffusion import DiffusionLM, generate

    _, h, i, layers, heads, kv, rows, prompt, canvas, dtype, block, cache = case
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=h, intermediate_size=i, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                      tie_word_embeddings=False, eos_token_id=0, pad_token_id=0)
    model = DiffusionLM.from_pretrained(Qwen2ForCausalLM(cfg).to(getattr(torch, dtype)), mask_token_id=VOCAB - 1)
    model.model.eval()
    ids = torch.randint(1, VOCAB - 1, (rows, prompt))
    am = torch.ones_like(ids)
    am[0, : prompt // 4] = 0
    ids[0, : prompt // 4] = 0
    _reset_peak()
    base = _status_kb("VmRSS")
    with torch.no_grad():  # 8 tokens per step (a step's memory does not depend on the count)
        generate(model, ids, am, max_new_tokens=canvas, steps=canvas // 8, alg="entropy", temperature=1.0, top_p=0.95,
                 block_length=block, cache=cache, seeds=list(range(rows)))
    return (_status_kb("VmHWM") - base) * 1024


def _predict(case) -> int:
    from rlvr.plan import learner_peak_bytes

    shape = _shape(case)
    *_, rows, prompt, canvas, dtype, ckpt = case
    b = 2 if dtype == "bfloat16" else 4
    peak = max(learner_peak_bytes(shape, rows, prompt + canvas, canvas, b, ckpt).values())
    return peak + shape.layers * shape.layer_params() * b  # the layers' own gradients (plain autograd)


def _measure(case) -> float:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.algos.logprobs import token_logprobs
    from rlvr.diffusion import DiffusionLM
    from rlvr.diffusion.model import tail_logits

    _, h, i, layers, heads, kv, rows, prompt, canvas, dtype, ckpt = case
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=h, intermediate_size=i, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                      tie_word_embeddings=False, eos_token_id=0, pad_token_id=0)
    hf = Qwen2ForCausalLM(cfg).to(getattr(torch, dtype))
    hf.get_input_embeddings().weight.requires_grad_(False)
    hf.lm_head.weight.requires_grad_(False)
    if ckpt:
        hf.gradient_checkpointing_enable()
    model = DiffusionLM.from_pretrained(hf, mask_token_id=VOCAB - 1)
    model.model.train()
    ids = torch.randint(VOCAB - 1, (rows, prompt + canvas))
    am = torch.ones_like(ids)
    am[0, : prompt // 4] = 0  # left padding in one row: the padded path (a 4-D mask), as in RL batches
    targets = torch.randint(VOCAB - 1, (rows, canvas))
    _reset_peak()
    base = _status_kb("VmRSS")
    lp = token_logprobs(tail_logits(model, ids, am, canvas), targets, 1.0)
    (-lp.mean()).backward()
    return (_status_kb("VmHWM") - base) * 1024


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="JSON results")] = Path("benchmarks/results/plan_check.json"),
    child: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    if child is not None:
        if child >= len(CASES):
            print(json.dumps({"measured": _measure_sampler(SAMPLER_CASES[child - len(CASES)])}))
        else:
            print(json.dumps({"measured": _measure(CASES[child])}))
        return
    results = []
    for k, case in enumerate([*CASES, *SAMPLER_CASES]):
        # a fixed mmap threshold: glibc then returns every freed tensor to the OS at once, so RSS tracks the
        # live tensors (its default threshold adapts upward to 32 MB and keeps freed blocks in the heap)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        proc = subprocess.run([sys.executable, __file__, "--child", str(k)], capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"case {case[0]!r} failed:\n{proc.stderr[-3000:]}")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])["measured"]
        sampler = k >= len(CASES)
        predicted = _predict_sampler(case) if sampler else _predict(case)
        r = {"case": case[0], "rows": case[6], "prompt": case[7], "canvas": case[8], "dtype": case[9],
             "hidden": case[1], "intermediate": case[2], "layers": case[3],
             **({"block": case[10], "cache": case[11]} if sampler else {"checkpointing": case[10]}),
             "measured_mb": measured / 2**20, "predicted_mb": predicted / 2**20, "ratio": predicted / measured}
        results.append(r)
        print(f"{case[0]:34s} measured {r['measured_mb']:8.0f} MB  plan {r['predicted_mb']:8.0f} MB  "
              f"plan/measured {r['ratio']:.3f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"vocab": VOCAB, "results": results}, indent=2) + "\n")
    worst = max(abs(r["ratio"] - 1) for r in results)
    print(f"worst |plan/measured - 1| = {worst:.3f} -> {out}")


if __name__ == "__main__":
    app()
