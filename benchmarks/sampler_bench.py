"""Diffusion sampler speed (canvas tokens per second) and quality, uncached vs KV caches vs parallel decoding.

    .venv/bin/python benchmarks/sampler_bench.py speed                 # CPU fp32: tiny grid + 100m subset
    .venv/bin/python benchmarks/sampler_bench.py speed --device cuda --dtype bfloat16 --model-size 1.5b
    .venv/bin/python benchmarks/sampler_bench.py quality --model runs/tiny/sft/model

``speed``: for every (model, batch, canvas) cell of the grid, every decoding configuration runs
``generate`` once, back to back in one process (after one warm-up call per configuration), on a batch
of random prompts of mixed lengths (16..32 tokens, left-padded). Reported: tokens/s (``batch x canvas /
wall time``), the speed-up over the uncached sampler of the same cell, model calls and the tokens the
model processed (batch x query length summed over calls). All configurations use blocks of 32,
``alg=entropy``, temperature 0 and one token per step unless named ``k/step`` (the fixed schedule
``schedule="even"`` with ``steps = canvas / k``). Random weights are nearly uniform, so threshold
decoding never finds a token above 0.9 and runs one token per step: those rows show the threshold
path's overhead; the fixed k/step rows stand in for the parallel decoding a trained model gets.

``quality``: held-out pass@1 of a trained model (the tiny world's SFT model) under the same
configurations, greedy, with ``rlvr.world.evaluate``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rlvr.diffusion import generate

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console(width=170)

# name -> Qwen2Config kwargs (1.5b: Qwen2.5-1.5B's shape)
MODELS = {
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    "100m": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=10,
                 num_attention_heads=12, num_key_value_heads=4),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2),
}  # fmt: skip

BLOCK = 32
# name -> (generate kwargs, tokens per step)
CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    "uncached": ({}, 1),
    "uncached, no blocks": ({"block_length": None}, 1),
    "prefix": ({"cache": "prefix"}, 1),
    "dual": ({"cache": "dual"}, 1),
    "threshold": ({"threshold": 0.9}, 1),
    "dual+threshold": ({"cache": "dual", "threshold": 0.9}, 1),
    "uncached 2/step": ({"schedule": "even"}, 2),
    "prefix 2/step": ({"cache": "prefix", "schedule": "even"}, 2),
    "dual 2/step": ({"cache": "dual", "schedule": "even"}, 2),
    # control: the exact uncached computation, but only the block's logits projected onto the vocabulary
    "prefix refresh=1": ({"cache": "prefix", "cache_refresh": 1}, 1),
    # the dual cache's quality dial: also rebuild the cached suffix every k steps inside a block
    "dual refresh=8": ({"cache": "dual", "cache_refresh": 8}, 1),
    "dual refresh=4": ({"cache": "dual", "cache_refresh": 4}, 1),
}

# (batch, canvas) cells per model; the 100m model only where a full uncached run fits on 2 CPU cores
GRIDS = {
    "tiny": [(1, 128), (1, 256), (1, 512), (8, 128), (8, 256), (8, 512), (32, 128), (32, 256)],
    "100m": [(1, 128), (1, 256)],
    "1.5b": [(1, 256), (1, 512), (8, 256), (8, 512), (32, 256), (32, 512)],
}
DEFAULT_CONFIGS = {
    "tiny": ["uncached", "prefix", "dual", "threshold", "dual+threshold", "uncached 2/step", "dual 2/step"],
    "100m": ["uncached", "prefix", "dual", "dual+threshold", "dual 2/step", "prefix refresh=1"],
    "1.5b": list(CONFIGS),
}


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


def random_prompts(batch: int, vocab: int, device: str, seed: int = 0):
    """Left-padded random prompts of 16..32 tokens (mixed lengths, as RL batches)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(16, 33, (batch,), generator=gen)
    lengths[0] = 32
    P = int(lengths.max())
    ids = torch.randint(2, vocab - 1, (batch, P), generator=gen)
    mask = (torch.arange(P)[None] >= (P - lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, 1).to(device), mask.to(device)


def gen_kwargs(name: str, canvas: int) -> dict[str, Any]:
    if name not in CONFIGS:
        raise typer.BadParameter(f"unknown config {name!r}; known: {list(CONFIGS)}")
    kw, per_step = CONFIGS[name]
    return {
        "max_new_tokens": canvas,
        "steps": canvas // per_step,
        "block_length": BLOCK,
        "alg": "entropy",
        **kw,
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@app.command()
def speed(
    model_size: Annotated[list[str] | None, typer.Option(help="tiny, 100m, 1.5b (repeatable)")] = None,
    configs: Annotated[
        list[str] | None, typer.Option(help="configurations (repeatable); default per model")
    ] = None,
    device: str = "cpu",
    dtype: str = "float32",
    threads: Annotated[int, typer.Option(help="torch threads (1 is fastest on a shared 2-core machine)")] = 1,
    plot: Annotated[Path | None, typer.Option(help="write a PNG of the speed-ups")] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the table as Markdown")] = None,
    max_canvas: Annotated[int, typer.Option(help="skip grid cells with a longer canvas (quick runs)")] = 4096,
    max_batch: Annotated[int, typer.Option(help="skip grid cells with a larger batch (quick runs)")] = 4096,
) -> None:
    """tokens/s of every configuration side by side, per (model, batch, canvas) cell."""
    model_size = model_size or ["tiny", "100m"]
    torch.set_num_threads(threads)
    torch_dtype = getattr(torch, dtype)
    load_start = os.getloadavg()
    table = Table(
        title=f"sampler speed: {device} {dtype}, {threads} thread(s), blocks of {BLOCK}, entropy, greedy"
    )
    for col in ("model", "batch", "canvas", "config", "steps", "calls", "model tokens", "seconds", "tokens/s",
                "speed-up"):  # fmt: skip
        table.add_column(col, justify="right")
    results: list[dict[str, Any]] = []
    for size in model_size:
        if size not in MODELS:
            raise typer.BadParameter(f"unknown --model-size {size!r}; known: {sorted(MODELS)}")
        names = configs or DEFAULT_CONFIGS[size]
        for name in names:
            gen_kwargs(name, BLOCK)  # validate names before the long run
        model, n_params = build_model(size, device, torch_dtype)
        vocab = MODELS[size]["vocab_size"]
        ids, mask = random_prompts(2, vocab, device)
        for name in names:  # warm-up: allocator, kernels, every code path
            generate(model, ids, mask, **gen_kwargs(name, 2 * BLOCK))
        cells = [(b, c) for b, c in GRIDS[size] if b <= max_batch and c <= max_canvas]
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{size} ({n_params / 1e6:.0f}M)", total=len(cells) * len(names))
            for batch, canvas in cells:
                ids, mask = random_prompts(batch, vocab, device)
                base = None
                for name in names:
                    kw = gen_kwargs(name, canvas)
                    _sync(device)
                    start = time.perf_counter()
                    out = generate(model, ids, mask, **kw)
                    _sync(device)
                    secs = time.perf_counter() - start
                    tps = batch * canvas / secs
                    base = tps if name == "uncached" else base
                    up = f"{tps / base:.2f}x" if base else "-"
                    table.add_row(size, str(batch), str(canvas), name, str(out.history.num_steps),
                                  str(out.stats.calls), str(out.stats.tokens), f"{secs:.2f}", f"{tps:.1f}", up)  # fmt: skip
                    results.append(dict(model=size, batch=batch, canvas=canvas, config=name,
                                        steps=out.history.num_steps, calls=out.stats.calls,
                                        tokens=out.stats.tokens, secs=secs, tps=tps,
                                        speedup=tps / base if base else None))  # fmt: skip
                    progress.advance(task)
        del model
    console.print(table)
    load = f"load average (1, 5, 15 min): at start {load_start}, at end {os.getloadavg()}"
    console.print(load)
    if markdown:
        head = "| model | batch | canvas | config | steps | calls | model tokens | seconds | tokens/s | speed-up |"
        lines = [head, "|" + "---|" * 10]
        for r in results:
            up = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
            lines.append(f"| {r['model']} | {r['batch']} | {r['canvas']} | {r['config']} | {r['steps']} | "
                         f"{r['calls']} | {r['tokens']} | {r['secs']:.2f} | {r['tps']:.1f} | {up} |")  # fmt: skip
        markdown.write_text("\n".join(lines) + f"\n\n{load}\n")
    if plot:
        _plot(results, plot)
        console.print(f"wrote {plot}")


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted(
        {(r["model"], r["batch"], r["canvas"]) for r in results}, key=lambda c: (c[0] != "tiny", c)
    )
    names = list(dict.fromkeys(r["config"] for r in results))
    fig, ax = plt.subplots(figsize=(max(8, len(cells) * 1.2), 4.5))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ys = [
            next((r["speedup"] or 0 for r in results if (r["model"], r["batch"], r["canvas"]) == c
                  and r["config"] == name), 0)
            for c in cells
        ]  # fmt: skip
        ax.bar([i + j * width for i in range(len(cells))], ys, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cells))])
    ax.set_xticklabels([f"{m}\nB={b} L={L}" for m, b, L in cells], fontsize=8)
    ax.set_ylabel("speed-up over uncached (tokens/s)")
    ax.set_title("Diffusion sampler: KV caches and parallel decoding (CPU, random weights)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


@app.command()
def quality(
    model: Annotated[Path, typer.Option(help="a trained DiffusionLM folder with its tokenizer")] = Path(
        "runs/tiny/sft/model"
    ),
    data: Path = Path("runs/tiny/data/rl/heldout.jsonl"),
    max_new_tokens: int = 64,
    configs: Annotated[list[str] | None, typer.Option(help="configurations (repeatable)")] = None,
    threshold: Annotated[float, typer.Option(help="threshold of the threshold configurations")] = 0.9,
    threads: int = 1,
) -> None:
    """Held-out pass@1 (greedy) and tokens/s of a trained model under each configuration."""
    from rlvr.sandbox.testing import sandbox_or_local

    from rlvr.diffusion import DiffusionLM
    from rlvr.world.evaluate import evaluate, read_rows, world_verifier

    torch.set_num_threads(threads)
    stack = contextlib.ExitStack()
    urls = stack.enter_context(sandbox_or_local())
    verifier = world_verifier(urls)
    if not (model / "config.json").is_file():
        raise typer.BadParameter(f"--model {str(model)!r} is not a model folder (no config.json)")
    dlm = DiffusionLM.from_pretrained(model)
    rows = read_rows(data)
    names = configs or ["uncached", "uncached, no blocks", "prefix", "dual", "threshold", "dual+threshold",
                        "uncached 2/step", "dual 2/step"]  # fmt: skip
    table = Table(
        title=f"held-out pass@1: {model} on {data} ({len(rows)} tasks), canvas {max_new_tokens}, greedy"
    )
    for col in ("config", "pass@1", "passed", "statuses", "same as uncached", "seconds (sampling + tests)"):
        table.add_column(col, justify="right")
    stop = dlm.tokenizer.decode([dlm.eos_token_id]) if dlm.eos_token_id is not None else None

    def answer(text: str) -> str:  # the completion as graded: up to the first stop token
        return text.split(stop)[0] if stop else text

    reference: list[str] | None = None
    for name in names:
        kw = gen_kwargs(name, max_new_tokens)
        if "threshold" in kw:
            kw["threshold"] = threshold
        start = time.perf_counter()
        res = evaluate(dlm, rows, verifier, progress=False, **kw)
        secs = time.perf_counter() - start
        answers = [answer(smp["completion"]) for smp in res["samples"]]
        if name == "uncached":
            reference = answers
        same = (
            "-" if reference is None else f"{sum(a == b for a, b in zip(answers, reference)) / len(rows):.3f}"
        )
        statuses = " ".join(f"{k}={v}" for k, v in res["statuses"].items())
        table.add_row(
            name, f"{res['pass@1']:.3f}", f"{res['passed']}/{res['n']}", statuses, same, f"{secs:.1f}"
        )
    console.print(table)
    stack.close()


if __name__ == "__main__":
    app()
