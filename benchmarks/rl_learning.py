"""Does GRPO here teach, and does the gain come from the reward? The main job's GRPO configuration and three
controls at the same compute, on several seeds, scored on the RL-held-out and transfer sets with paired
per-task gains and 95% bootstrap confidence intervals.

    python benchmarks/rl_learning.py [--run runs/tiny] [--seeds 0 --seeds 1] [--arms main --arms shuffle ...]

Needs what scripts/main.sh builds in ``--run`` (the SFT model, the filtered and split RL prompts). Each arm x
seed is one `rlvr train` run in ``<run>/rl_learning/<arm>_s<seed>`` (skipped when its summary.json exists,
so the script resumes). Arms:

* ``main``: recipes/configs/tiny/grpo.yaml as scripts/main.sh runs it;
* ``shuffle``: advantages permuted across the batch (``algo.control=shuffle_advantages``): no gain expected;
* ``flip``: reward sign flipped (``algo.control=flip_reward``): held-out must fall;
* ``lr0``: learning rate 0: exactly 0 (common random numbers).

Writes benchmarks/results/rl_learning.json, benchmarks/figures/rl_learning.png and the table between the
markers in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)
ARMS = {
    "main": [],
    "shuffle": ["algo.control=shuffle_advantages"],
    "flip": ["algo.control=flip_reward"],
    "lr0": ["learner.optim.lr=0"],
}
BEGIN, END = "<!-- rl_learning:begin (benchmarks/rl_learning.py writes this) -->", "<!-- rl_learning:end -->"


def _train(run: Path, out: Path, seed: int, extra: list[str]) -> dict:
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    cmd = [
        ".venv/bin/rlvr", "train", "-c", "recipes/configs/tiny/grpo.yaml",
        f"model.path={run}/sft2/model", f"data.train={run}/rl_split/train.jsonl",
        f"data.heldout={{rl_heldout: {run}/rl_split/heldout.jsonl, transfer: {run}/data/rl/heldout.jsonl}}",
        f"trainer.out_dir={out}", f"trainer.seed={seed}", f"data.shuffle_seed={seed}", *extra,
    ]
    t0 = time.time()
    proc = subprocess.run(cmd)
    if proc.returncode:
        raise SystemExit(f"{out.name}: rlvr train exited {proc.returncode}")
    print(f"[rl_learning] {out.name} took {time.time() - t0:.0f}s", flush=True)
    return json.loads((out / "summary.json").read_text())


def _task_gains(out: Path, name: str) -> list[float]:
    before = json.loads((out / "eval_before.json").read_text())["sets"][name]["tasks"]
    after = json.loads((out / "eval_after.json").read_text())["sets"][name]["tasks"]
    return [a["c"] / a["n"] - b["c"] / b["n"] for a, b in zip(after, before, strict=True)]


@app.command()
def main(
    run: Path = Path("runs/tiny"),
    seeds: Annotated[list[int] | None, typer.Option("--seeds")] = None,
    arms: Annotated[list[str] | None, typer.Option("--arms")] = None,
    extra: Annotated[list[str] | None, typer.Option("--extra", help="Overrides for every run.")] = None,
    out_json: Path = Path("benchmarks/results/rl_learning.json"),
    figure: Path = Path("benchmarks/figures/rl_learning.png"),
    benchmarks_md: Path = Path("BENCHMARKS.md"),
) -> None:
    import numpy as np

    from rlvr.stats import paired_bootstrap

    seeds, arms = seeds or [0, 1], arms or list(ARMS)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
    results: dict = {"seeds": seeds, "extra": extra or [], "arms": {}}
    for arm in arms:
        per_seed, sets = {}, None
        for seed in seeds:
            out = run / "rl_learning" / f"{arm}_s{seed}"
            summary = _train(run, out, seed, ARMS[arm] + (extra or []))
            sets = list(summary["eval"])
            per_seed[seed] = {s: summary["eval"][s] for s in sets}
        pooled = {}
        for s in sets:  # tasks are the same in every seed: average each task's gain over seeds, bootstrap tasks
            gains = np.mean([_task_gains(run / "rl_learning" / f"{arm}_s{seed}", s) for seed in seeds], axis=0)
            pooled[s] = paired_bootstrap(np.zeros_like(gains), gains).to_dict()
        results["arms"][arm] = {"per_seed": per_seed, "pooled": pooled}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    table = _table(results)
    print(table)
    _figure(results, figure)
    if benchmarks_md.is_file() and BEGIN in benchmarks_md.read_text():
        text = benchmarks_md.read_text()
        head, rest = text.split(BEGIN, 1)
        benchmarks_md.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    print(f"-> {out_json}, {figure}")


def _fmt(g: dict) -> str:
    return f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"


def _table(results: dict) -> str:
    lines = ["| arm | set | " + " | ".join(f"seed {s}: before -> after, gain [95% CI]" for s in results["seeds"])
             + " | pooled gain [95% CI] |", "|---|---|" + "---|" * (len(results["seeds"]) + 1)]
    for arm, r in results["arms"].items():
        for s, pooled in r["pooled"].items():
            cells = []
            for seed in results["seeds"]:
                e = r["per_seed"][seed][s]
                cells.append(f"{e['before']['pass@1']:.3f} -> {e['after']['pass@1']:.3f}, {_fmt(e['gain_pass@1'])}")
            lines.append(f"| {arm} | {s} | " + " | ".join(cells) + f" | {_fmt(pooled)} |")
    return "\n".join(lines)


def _figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["arms"])
    sets = list(next(iter(results["arms"].values()))["pooled"])
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(arms), 3.6))
    width = 0.8 / len(sets)
    for j, s in enumerate(sets):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(arms))]
        g = [results["arms"][a]["pooled"][s] for a in arms]
        ax.bar(xs, [x["mean"] for x in g], width=width, label=s)
        ax.errorbar(xs, [x["mean"] for x in g], yerr=[[x["mean"] - x["low"] for x in g], [x["high"] - x["mean"] for x in g]],
                    fmt="none", ecolor="black", capsize=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel("held-out pass@1 gain (after - before)")
    ax.set_title(f"paired per-task gain, 95% CI, pooled over seeds {results['seeds']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(app())
