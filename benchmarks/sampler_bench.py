"""Diffusion sampler throughput (canvas tokens per second) on randomly initialised Qwen2 models.

    .venv/bin/python benchmarks/sampler_bench.py                      # CPU, fp32, tiny + 100m
    .venv/bin/python benchmarks/sampler_bench.py --device cuda --dtype bfloat16 --model-size 1.5b

Each setting runs ``generate`` once (after a warm-up call) on a batch of identical-length random prompts
and reports canvas tokens per second (``batch * max_new_tokens / wall time``) and forward passes run.
Random weights are nearly uniform, so threshold decoding rarely finds confident tokens: its rows show
the overhead of the threshold path, not the speed-up a trained model gets.
"""

from __future__ import annotations

import time
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

# name -> Qwen2Config kwargs (1.5b: Qwen2.5-1.5B's shape)
MODELS = {
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "100m": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=10,
                 num_attention_heads=12, num_key_value_heads=4),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2),
}  # fmt: skip

# (max_new_tokens, steps, block_length, threshold)
GRIDS = {
    "tiny": [(64, 64, None, None), (64, 32, None, None), (64, 16, None, None), (64, 64, 16, None),
             (64, 64, None, 0.9), (128, 128, None, None), (128, 64, None, None), (128, 128, 32, None),
             (128, 128, 32, 0.9)],
    "100m": [(64, 64, None, None), (64, 32, None, None), (64, 16, None, None), (64, 64, 32, None),
             (64, 64, 32, 0.9), (128, 64, None, None)],
    "1.5b": [(256, 256, None, None), (256, 128, None, None), (256, 64, None, None), (256, 256, 32, None),
             (256, 256, 32, 0.9), (512, 512, None, None), (512, 256, 32, None)],
}  # fmt: skip


def build_model(size: str, device: str, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.diffusion import DiffusionLM

    torch.manual_seed(0)
    cfg = Qwen2Config(**MODELS[size], max_position_embeddings=4096, tie_word_embeddings=False,
                      eos_token_id=1, pad_token_id=1, bos_token_id=0)  # fmt: skip
    with torch.device(device):
        qwen = Qwen2ForCausalLM(cfg).to(dtype).eval()
    n_params = sum(p.numel() for p in qwen.parameters())
    return DiffusionLM.from_pretrained(qwen, mask_token_id=cfg.vocab_size - 1), n_params


def run(
    model_size: Annotated[list[str] | None, typer.Option(help="tiny, 100m, 1.5b (repeatable)")] = None,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    prompt_len: int = 32,
    threads: int = 2,
    alg: str = "entropy",
) -> None:
    model_size = model_size or ["tiny", "100m"]
    torch.set_num_threads(threads)
    console = Console()
    torch_dtype = getattr(torch, dtype)
    table = Table(
        title=f"sampler throughput: {device} {dtype}, batch {batch}, prompt {prompt_len}, alg {alg}"
    )
    for col in (
        "model",
        "params",
        "length",
        "steps",
        "block",
        "threshold",
        "forwards",
        "seconds",
        "tokens/s",
    ):
        table.add_column(col, justify="right")
    for size in model_size:
        if size not in MODELS:
            raise typer.BadParameter(f"unknown --model-size {size!r}; known: {sorted(MODELS)}")
        model, n_params = build_model(size, device, torch_dtype)
        vocab = MODELS[size]["vocab_size"]
        gen = torch.Generator().manual_seed(0)
        prompt = torch.randint(2, vocab - 1, (batch, prompt_len), generator=gen).to(device)
        model.generate(prompt, max_new_tokens=8, steps=2, alg=alg)  # warm-up (allocator, kernels)
        for length, steps, block, threshold in track(GRIDS[size], description=f"{size}", console=console):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(prompt, max_new_tokens=length, steps=steps, alg=alg,
                                 block_length=block, threshold=threshold)  # fmt: skip
            if device == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - start
            table.add_row(size, f"{n_params / 1e6:.1f}M", str(length), str(steps), str(block or "-"),
                          str(threshold or "-"), str(out.history.num_steps), f"{secs:.2f}",
                          f"{batch * length / secs:.1f}")  # fmt: skip
        del model
    console.print(table)


if __name__ == "__main__":
    typer.run(run)
