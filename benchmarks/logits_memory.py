"""Peak memory of one learner micro-batch (forward + backward of the token log-probs) at Qwen's vocabulary:
full-sequence logits vs logits of the canvas only (``tail_logits``) vs that plus the chunked log-softmax
(``token_logprobs``: forward and backward a chunk of positions at a time), measured side by side on CPU.

    python benchmarks/logits_memory.py --rows 2 --prompt 256 --response 1024 [--dtype bfloat16]

Each variant runs in a fresh process (peak RSS is a high-water mark); the figure is the peak RSS during
the step minus the RSS before it. The model is a Qwen2 with the real 151,936-token vocabulary and tiny
widths, so the logits dominate as they do at 7B (where the hidden states are small next to 152k logits).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)
VARIANTS = ("full logits", "canvas logits", "canvas logits + chunked log-softmax")
VOCAB = 151_936


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _step(variant: str, rows: int, prompt: int, response: int, dtype: str) -> dict[str, float]:
    import resource

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.algos.logprobs import _picked_logprob, token_logprobs
    from rlvr.diffusion import DiffusionLM
    from rlvr.diffusion.model import tail_logits

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=False, eos_token_id=0, pad_token_id=0)
    hf = Qwen2ForCausalLM(cfg).to(getattr(torch, dtype))
    model = DiffusionLM.from_pretrained(hf, mask_token_id=VOCAB - 1).train()
    ids = torch.randint(VOCAB - 1, (rows, prompt + response))
    targets = torch.randint(VOCAB - 1, (rows, response))
    base = _rss_kb()
    if variant == VARIANTS[0]:
        lp = _picked_logprob(model(ids)[:, -response:], targets, 1.0)
    elif variant == VARIANTS[1]:
        lp = _picked_logprob(tail_logits(model, ids, None, response), targets, 1.0)
    else:
        lp = token_logprobs(tail_logits(model, ids, None, response), targets, 1.0)
    (-lp.mean()).backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "peak_over_start_mb": (peak - base) / 1024}


@app.command()
def main(
    rows: int = 2,
    prompt: int = 256,
    response: int = 1024,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16 (the GPU recipe's)")] = "float32",
    out: Annotated[Path | None, typer.Option(help="JSON results (default benchmarks/results/logits_memory_<dtype>.json)")] = None,
    child: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    if child is not None:
        print(json.dumps(_step(child, rows, prompt, response, dtype)))
        return
    results = []
    for variant in VARIANTS:
        proc = subprocess.run(
            [sys.executable, __file__, "--rows", str(rows), "--prompt", str(prompt), "--response", str(response),
             "--dtype", dtype, "--child", variant], capture_output=True, text=True, check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{variant:40s} {results[-1]['peak_over_start_mb']:9.0f} MB", flush=True)
    full = results[0]["peak_over_start_mb"]
    for r in results:
        r["ratio_to_full"] = r["peak_over_start_mb"] / full
    fp32_full_logits_mb = rows * (prompt + response) * VOCAB * 4 / 2**20
    out = out or Path(f"benchmarks/results/logits_memory_{dtype}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "prompt": prompt, "response": response, "vocab": VOCAB, "dtype": dtype,
                               "fp32_full_logits_mb": fp32_full_logits_mb, "results": results}, indent=2) + "\n")
    print(f"(one fp32 copy of the full logits: {fp32_full_logits_mb:.0f} MB) -> {out}")


if __name__ == "__main__":
    app()
