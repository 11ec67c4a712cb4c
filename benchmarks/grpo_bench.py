"""GRPO step time: where one RL step's time goes, and how it scales with group size and rollout actors.

    .venv/bin/python benchmarks/grpo_bench.py                                  # n = 4 8 16, workers = 1 2
    .venv/bin/python benchmarks/grpo_bench.py --group-size 8 --workers 2 --steps 5 --append BENCHMARKS.md

Each setting builds a real :class:`~rlvr.grpo.controller.Controller` (Ray actors, DeepSpeed learner on
gloo) on a random tiny diffusion LM and runs ``train_step`` once to warm up, then ``--steps`` more; the
table shows the means of the controller's own timings:

- ``time/generate``: from submitting the rollout chunks until the last chunk is back;
- ``time/reward_tail``: reward scoring still running after generation ended (scoring overlaps generation
  chunk by chunk, so this is the part that is not hidden);
- ``time/update``: the learner's whole ``train_step``: coupled mask copies, old log-probs and the PPO
  epochs (the controller does not time the old-log-prob pass separately);
- ``time/sync``: gathering the learner's weights and loading them into every rollout actor;
- ``time/step``: the whole step (the rest is advantage/substitution bookkeeping and logging).

The reward is a cheap registered verifier (``bench_even_length``, the pattern of tests/grpo/conftest.py)
so the figures isolate the training system; sandbox throughput is benchmarked in BENCHMARKS.md's Sandbox
section. Ray is started once with ``--ray-cpus`` logical CPUs so that one learner rank and two rollout
actors fit (the actors still share this machine's physical cores).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/grpo_bench.py` from anywhere

from rlvr.rewards.registry import register  # noqa: E402

TIMINGS = ("time/generate", "time/reward_tail", "time/update", "time/sync", "time/step")
VERIFIER = "bench_even_length"


@register(VERIFIER)
def even_length(completions, **_):
    """1.0 for an even number of characters: a random policy gets mixed groups, so no group is skipped."""
    return [1.0 if len(c) % 2 == 0 else 0.0 for c in completions]


def _rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"Write f{i}(x) returning x + {i}."}],
            "data_source": "bench",
            "ability": "code",
            "reward_model": {
                "style": "rule",
                "ground_truth": json.dumps({
                    "language": "python",
                    "tests": [{"type": "assert", "code": f"assert f{i}({x}) == {x + i}"} for x in (0, 1, 5)],
                }),
            },
            "extra_info": {"index": i},
        }
        for i in range(n)
    ]


def build_world(root: Path, hidden: int, layers: int) -> dict[str, str]:
    """A random tiny DiffusionLM, a small BPE tokenizer and 64 prompt rows under ``root``."""
    from rlvr.diffusion import DiffusionLM
    from rlvr.world.model import build_tiny_qwen2
    from rlvr.world.tokenizer import train_bpe_tokenizer

    rows = _rows(64)
    texts = [r["prompt"][0]["content"] for r in rows] + ["def f(x):\n    return x + 1\n"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=320)
    model = build_tiny_qwen2(
        tok, seed=0, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    DiffusionLM.from_pretrained(model, tokenizer=tok).save_pretrained(root / "model")
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model": str(root / "model"), "train": str(root / "train.jsonl")}


# --reward: the cheap in-process verifier, or the real path (code_tests over a local Docker sandbox, which
# the controller starts; random completions are unfenced garbage, so every program is a quick SyntaxError).
# A truncated completion (no EOS in the canvas) gets reward 0 without reaching the verifier, and a random
# model rarely emits EOS: with the sandbox, an EOS *bonus* (negative eos_penalty) ends most completions
# early so that they are really executed.
REWARDS = {
    "cheap": {"reward.verifier": VERIFIER, "reward.verifier_kwargs": "{}"},
    "sandbox": {
        "reward.verifier": "code_tests",
        "reward.verifier_kwargs": "{mode: binary, allow_unfenced: true}",
        "rollout.sampler.eos_penalty": -4.0,
    },
}


def overrides(world: dict[str, str], out_dir: Path, n: int, workers: int, prompts: int, tokens: int,
              steps: int, reward: str = "cheap") -> list[str]:  # fmt: skip
    base = {
        "model.path": world["model"],
        "data.train": world["train"],
        "data.heldout": "null",
        "data.prompts_per_step": prompts,
        "data.max_prompt_length": 64,
        "rollout.num_workers": workers,
        "rollout.n": n,
        "rollout.micro_batch_size": 64,
        "rollout.sampler.max_new_tokens": tokens,
        "rollout.sampler.steps": tokens // 2,
        **REWARDS[reward],
        "learner.micro_batch_size": 64,
        "learner.deepspeed.zero_stage": 1,
        "learner.threads": 1,
        "trainer.out_dir": str(out_dir),
        "trainer.total_steps": steps + 1,
        "trainer.resume": "false",
    }
    return [f"{k}={v}" for k, v in base.items()]


def measure(cfg, steps: int) -> dict[str, list[float]]:
    """Warm-up step, then ``steps`` timed steps; returns each timing's per-step values."""
    import ray

    from rlvr.grpo.controller import Controller

    with Controller(cfg) as c:
        try:
            c.train_step()  # warm-up: first forward/backward, allocator, DeepSpeed buckets
            runs = [c.train_step() for _ in range(steps)]
        finally:
            for actor in [*c.workers, *c.learners]:  # free the CPUs for the next setting now
                ray.kill(actor)
    out = {k: [m[k] for m in runs] for k in TIMINGS}
    out["verdicts"] = {k: v for k, v in runs[-1].items() if k.startswith("verdict/")}  # last step's mix
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, no GPU"


def plot(results: list[dict], path: Path) -> None:
    """Stacked bars of the step breakdown per (n, workers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ("time/generate", "time/reward_tail", "time/update", "time/sync")
    labels = [f"n={r['n']}\nw={r['workers']}" for r in results]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(results) + 2), 4))
    bottom = [0.0] * len(results)
    for key in parts:
        vals = [r["mean"][key] for r in results]
        ax.bar(labels, vals, bottom=bottom, label=key.removeprefix("time/"))
        bottom = [b + v for b, v in zip(bottom, vals)]
    other = [r["mean"]["time/step"] - b for r, b in zip(results, bottom)]
    ax.bar(labels, other, bottom=bottom, label="other", color="lightgrey")
    ax.set_ylabel("seconds per RL step")
    ax.set_title("GRPO step breakdown (group size n, rollout actors w)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "## GRPO step",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}; date {meta['date']}; load average before/after "
        f"{meta['load_before']} / {meta['load_after']} (other jobs shared the cores).  ",
        f"Setup: random tiny diffusion LM ({meta['params']:,} parameters), {meta['prompts']} prompts per step, "
        f"{meta['tokens']}-token canvas decoded in {meta['tokens'] // 2} steps, 1 DeepSpeed rank (ZeRO-1, gloo), "
        f"2 PPO epochs with coupled mask pairs, reward: {meta['reward_desc']}; mean of {meta['steps']} steps after "
        "1 warm-up step. Seconds per RL step:",
        "",
        "| n | rollout actors | rows | generate | reward tail | update (old logp + PPO) | sync | step | rows/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["mean"]
        lines.append(
            f"| {r['n']} | {r['workers']} | {r['rows']} | {m['time/generate']:.2f} | {m['time/reward_tail']:.3f} "
            f"| {m['time/update']:.2f} | {m['time/sync']:.3f} | {m['time/step']:.2f} ± {r['std_step']:.2f} "
            f"| {r['rows'] / m['time/step']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(
    group_size: Annotated[list[int] | None, typer.Option(help="rollout.n values (repeatable)")] = None,
    workers: Annotated[list[int] | None, typer.Option(help="rollout.num_workers values (repeatable)")] = None,
    steps: Annotated[int, typer.Option(help="timed steps per setting, after one warm-up step")] = 3,
    prompts: Annotated[int, typer.Option(help="data.prompts_per_step")] = 4,
    tokens: Annotated[int, typer.Option(help="canvas length (max_new_tokens); steps = tokens / 2")] = 64,
    hidden: Annotated[int, typer.Option(help="hidden size of the random model")] = 64,
    layers: Annotated[int, typer.Option(help="layers of the random model")] = 2,
    ray_cpus: Annotated[int, typer.Option(help="logical CPUs given to the local Ray cluster")] = 4,
    reward: Annotated[str, typer.Option(help="cheap (registered function) or sandbox (code_tests, Docker)")] = "cheap",
    append: Annotated[Path | None, typer.Option(help="append the markdown section to this file")] = None,
    png: Annotated[Path, typer.Option(help="stacked-bar chart of the breakdown")] = Path(
        "runs/bench/grpo_step.png"
    ),
) -> None:
    import ray
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    group_size, workers = group_size or [4, 8, 16], workers or [1, 2]
    if reward not in REWARDS:
        raise typer.BadParameter(f"--reward must be one of {sorted(REWARDS)}, got {reward!r}")
    console = Console(width=130)
    load_before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    from rlvr.config import load_config
    from rlvr.grpo.config import GRPOConfig

    results = []
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        world = build_world(Path(tmp), hidden, layers)
        from rlvr.diffusion import DiffusionLM

        params = sum(p.numel() for p in DiffusionLM.from_pretrained(world["model"]).model.parameters())
        ray.init(address="local", num_cpus=ray_cpus, object_store_memory=300 * 1024**2, include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        try:
            settings = [(n, w) for n in group_size for w in workers]
            with Progress(console=console) as bar:
                task = bar.add_task("GRPO step settings", total=len(settings))
                for n, w in settings:
                    out = Path(tmp) / f"run-n{n}-w{w}"
                    cfg = load_config(GRPOConfig, None, overrides(world, out, n, w, prompts, tokens, steps, reward))
                    t0 = time.perf_counter()
                    per_step = measure(cfg, steps)
                    results.append({
                        "n": n, "workers": w, "rows": prompts * n,
                        "mean": {k: statistics.fmean(per_step[k]) for k in TIMINGS},
                        "verdicts": per_step["verdicts"],
                        "std_step": statistics.pstdev(per_step["time/step"]),
                        "wall": time.perf_counter() - t0,
                    })  # fmt: skip
                    bar.advance(task)
        finally:
            ray.shutdown()

    meta = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(),
        "date": date.today().isoformat(),
        "load_before": load_before,
        "load_after": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "params": params,
        "prompts": prompts,
        "tokens": tokens,
        "steps": steps,
        "reward_desc": {
            "cheap": "cheap registered verifier (even length)",
            "sandbox": "code_tests over a local Docker sandbox (pool of 2 warm containers; EOS bonus 4 "
            "so that most completions end and are executed)",
        }[reward],
    }
    table = Table(title=f"GRPO step breakdown, seconds (mean of {steps} steps after a warm-up)")
    for col in ("n", "actors", "rows", "generate", "reward tail", "update", "sync", "step", "rows/s", "wall"):
        table.add_column(col, justify="right")
    for r in results:
        m = r["mean"]
        table.add_row(
            str(r["n"]), str(r["workers"]), str(r["rows"]), f"{m['time/generate']:.2f}",
            f"{m['time/reward_tail']:.3f}", f"{m['time/update']:.2f}", f"{m['time/sync']:.3f}",
            f"{m['time/step']:.2f}±{r['std_step']:.2f}", f"{r['rows'] / m['time/step']:.1f}",
            f"{r['wall']:.0f}s",
        )  # fmt: skip
    console.print(table)
    console.print("verdicts (last step): " + "; ".join(
        f"n={r['n']} w={r['workers']}: " + ", ".join(f"{k[8:]} {v:.2f}" for k, v in r["verdicts"].items())
        for r in results))  # fmt: skip
    console.print(f"load average before {meta['load_before']}, after {meta['load_after']}")
    plot(results, png)
    console.print(f"chart: {png}")
    section = markdown(results, meta)
    png.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if append is not None:
        text = append.read_text() if append.exists() else "# Benchmarks\n"
        append.write_text(text.rstrip("\n") + "\n\n" + section)
        console.print(f"appended to {append}")
    else:
        console.print(section)


if __name__ == "__main__":
    typer.run(main)
