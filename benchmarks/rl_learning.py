"""Does GRPO here teach, and does the gain come from the reward? The main job's GRPO configuration and three
controls at the same compute, on several seeds, scored on the RL-held-out and forgetting (transfer) sets with
paired per-task gains and 95% bootstrap confidence intervals.

    python benchmarks/rl_learning.py [--run runs/tiny] [--seeds 0 --seeds 1] [--arms main --arms sign_flip ...]
    python benchmarks/rl_learning.py --report-only     # tables, JSON and figure from the runs that exist

Needs what scripts/main.sh builds in ``--run`` (the SFT model, the filtered and split RL prompts). Each arm x
seed is one `rlvr train` run in ``<run>/rl_learning/<arm>_s<seed>`` (skipped when its summary.json exists,
so the script resumes). Arms (:data:`ARMS`):

* ``main``: recipes/configs/tiny/grpo.yaml as scripts/main.sh runs it (KL anchor to the SFT model, 0.05);
* ``shuffled_advantages``: advantages permuted across the batch (``algo.control=shuffle_advantages``): no gain;
* ``sign_flip``: reward sign flipped (``algo.control=flip_reward``): held-out must fall;
* ``lr0``: learning rate 0: exactly 0 (common random numbers);
* ``synchronous``: the main configuration without the off-policy overlap (generation waits for training);
* ``trace``: TraceRL's trajectory-aware log-prob estimator instead of coupled masks, at equal learner compute;
* ``refill``, ``warmup``, ``group16``, ``epochs4``, ``steps180``, ``refill_budget``: DAPO's refill of
  zero-advantage groups; a 10% linear learning-rate warm-up; 16 samples per group at the same samples per step; 4
  PPO epochs per batch; 180 steps instead of 100; refill for 50 steps (main's GRPO seconds);
* ``paper_recipe`` (no KL: Dream-Coder's RL recipe) and its shuffled-advantage and sign-flip controls.

In the JSON, ``forgetting_guard`` (the issue's name for the main configuration with the KL option on) lists
main's entries.

The before-RL evaluation depends only on the SFT model, the held-out sets and the seed (the sampling seeds are
common random numbers), so the arms of one seed share it: a run whose seed already has an ``eval_before.json``
starts from a copy (7 of its ~30 minutes saved). The ``lr0`` arm checks that this is sound: its after-RL
evaluation, computed afresh, must equal the shared before-RL one task by task (gain exactly 0).

Writes benchmarks/results/rl_learning.json (one entry per arm, seed and split), benchmarks/figures/rl_learning.png
and the table between the markers in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

app = typer.Typer(add_completion=False)
ARMS = {
    # recipes/configs/tiny/grpo.yaml as scripts/main.sh runs it (with its KL anchor to the SFT model)
    "main": [],
    "shuffled_advantages": ["algo.control=shuffle_advantages"],
    "sign_flip": ["algo.control=flip_reward"],
    "lr0": ["learner.optim.lr=0"],
    # issue 13 part 1: the main job overlaps generation with training; this arm does not (equal steps)
    "synchronous": ["trainer.off_policy_overlap=false"],
    # issue 13 part 6: TraceRL's estimator (each token scored on the canvas the sampler decoded it from, the
    # decode steps cut into 2 slices = the learner compute of coupled's mask pair)
    "trace": ["algo.logprob_estimator=trace", "algo.trace_slices=2"],
    # issue 13 part 5 ablations: DAPO's refill instead of substitution (more generation per step), and a
    # linear learning-rate warm-up over the first 10% of steps
    "refill": ["algo.zero_advantage=refill"],
    "warmup": ["learner.optim.warmup_ratio=0.1"],
    # ... twice the samples per group at the same samples per step (8 prompts x 16), and 4 PPO epochs per batch
    "group16": ["rollout.n=16", "data.prompts_per_step=8"],
    "epochs4": ["algo.ppo_epochs=4"],
    # ... and more steps over the RL-train split: 180 steps (1.8x main's seconds, 0.77x the refill arm's), the
    # seconds refill spends on sampling spent on optimisation instead (compared head to head in PAIRS)
    "steps180": ["trainer.total_steps=180"],
    # ... and refill within the main job's GRPO seconds (main: 100 steps at 9.25 s on idle cores). A refill step
    # costs more as the policy learns (more groups come back all right or all wrong): 17.3 s over the first 43
    # steps, 21.7 s over 100, so 50 steps
    "refill_budget": ["algo.zero_advantage=refill", "trainer.total_steps=50"],
    # Dream-Coder's RL recipe without a KL term (the main configuration before the KL anchor was measured)
    # and its controls
    "paper_recipe": ["algo.kl_coef=0"],
    "paper_recipe_shuffled_advantages": ["algo.kl_coef=0", "algo.control=shuffle_advantages"],
    "paper_recipe_sign_flip": ["algo.kl_coef=0", "algo.control=flip_reward"],
}
# Head to head, A minus B (main against every arm is always reported): refill against the arms that spend about
# its GRPO seconds on more optimisation of main's samples instead of more sampling
PAIRS = [("refill", "steps180"), ("refill", "epochs4")]
# The "forgetting_guard" (the main configuration with the KL or replay option on) is the main
# configuration itself now that it has the KL anchor: its entries are main's.
ALIASES = {"forgetting_guard": "main"}
# the run's eval-set names -> the split names of the JSON file
SPLITS = {"rl_heldout": "rl_heldout", "transfer": "forgetting"}
BEGIN, END = "<!-- rl_learning:begin (benchmarks/rl_learning.py writes this) -->", "<!-- rl_learning:end -->"


def _train(run: Path, out: Path, seed: int, extra: list[str]) -> dict:
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    shared = sorted((run / "rl_learning").glob(f"*_s{seed}/eval_before.json"))
    if shared and not (out / "eval_before.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared[0], out / "eval_before.json")
        print(f"[rl_learning] {out.name}: before-RL evaluation shared from {shared[0].parent.name}", flush=True)
    cmd = [
        ".venv/bin/rlvr", "train", "-c", "recipes/configs/tiny/grpo.yaml",
        f"model.path={run}/sft2/model", f"data.train={run}/rl_split/train.jsonl",
        f"data.heldout={{rl_heldout: {run}/rl_split/heldout.jsonl, transfer: {run}/data/rl/heldout.jsonl}}",
        f"trainer.out_dir={out}", f"trainer.seed={seed}", f"data.shuffle_seed={seed}",
        # held-out pass@1 with the exact 1 token/step sampler (the main job evaluates with the cheaper rollout
        # sampler); every run of this benchmark has used it, so its figures stay comparable
        "trainer.eval_sampler={steps: 32, cache: none}", *extra,
    ]
    t0 = time.time()
    proc = subprocess.run(cmd)
    if proc.returncode:
        raise SystemExit(f"{out.name}: rlvr train exited {proc.returncode}")
    print(f"[rl_learning] {out.name} took {time.time() - t0:.0f}s", flush=True)
    return json.loads((out / "summary.json").read_text())


def _step_times(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative GRPO wall seconds, training reward) per step of a run, from its metrics.jsonl (evaluations
    excluded): what overlap and synchronous arms are compared on at equal wall time."""
    from rlvr.metrics import read_metrics

    rows = read_metrics(out / "metrics.jsonl")
    return np.cumsum([r["time/step"] for r in rows]), np.array([r["reward/mean"] for r in rows])


def _last_quarter(rewards: tuple[np.ndarray, ...]) -> float:
    """Training reward over the last quarter of the steps (at least one), averaged over the runs given."""
    return float(np.mean([r[len(r) - max(1, len(r) // 4):].mean() for r in rewards]))


def _overlap_vs_synchronous(run: Path, done: dict[str, list[int]], figure: Path) -> list[dict]:
    """Issue 13 part 1 at equal wall time: per seed where both ran, the mean step time of main (overlap) and of
    the synchronous arm; both runs cut at the shorter one's GRPO seconds, the steps each had done and its
    training reward over the last quarter of that time. Plots the training reward against wall seconds."""
    seeds = sorted(set(done.get("main", [])) & set(done.get("synchronous", [])))
    rows: list[dict] = []
    if not seeds:
        return rows
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(seeds), figsize=(5 * len(seeds), 3.4), squeeze=False)
    for ax, seed in zip(axes[0], seeds, strict=True):
        (tm, rm), (ts, rs) = (_step_times(run / "rl_learning" / f"{a}_s{seed}") for a in ("main", "synchronous"))
        wall = min(tm[-1], ts[-1])  # both runs cut at the shorter one's GRPO seconds
        last_m, last_s = rm[(tm > 0.75 * wall) & (tm <= wall)], rs[(ts > 0.75 * wall) & (ts <= wall)]
        step_m, step_s = np.diff(tm, prepend=0).mean(), np.diff(ts, prepend=0).mean()
        rows.append({"seed": seed, "main_s_per_step": float(step_m), "sync_s_per_step": float(step_s),
                     "step_time_ratio": float(step_m / step_s), "main_seconds": float(tm[-1]),
                     "sync_seconds": float(ts[-1]), "equal_wall_seconds": float(wall),
                     "main_steps_at_equal_wall": int((tm <= wall).sum()),
                     "sync_steps_at_equal_wall": int((ts <= wall).sum()),
                     "main_reward_last_quarter": float(last_m.mean()),
                     "sync_reward_last_quarter": float(last_s.mean())})
        for t, r, label in ((tm, rm, "overlap (main)"), (ts, rs, "synchronous")):
            k = min(10, len(r))
            ax.plot(t[k - 1 :], np.convolve(r, np.ones(k) / k, mode="valid"), label=label)
        ax.axvline(wall, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("GRPO wall seconds (evaluations excluded)")
        ax.set_ylabel("training reward (mean of 10 steps)")
        ax.set_title(f"seed {seed}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return rows


def _versus(run: Path, done: dict[str, list[int]], ref: str, arm: str) -> dict | None:
    """``ref`` minus ``arm`` after RL, paired per task (same tasks, same sampling seeds), each task averaged over
    the seeds both ran, bootstrapped over tasks; with what ``arm`` cost (GRPO seconds relative to ``ref``'s) and
    what each trained to (training reward over the last quarter of the steps), averaged over those seeds.
    None when they share no seed."""
    from rlvr.stats import paired_bootstrap

    common = sorted(set(done.get(ref, [])) & set(done.get(arm, [])))
    if not common:
        return None
    (ta, ra), (tr, rr) = (zip(*(_step_times(run / "rl_learning" / f"{x}_s{seed}") for seed in common))
                          for x in (arm, ref))
    out = {"train_seconds_ratio": float(np.mean([a[-1] / r[-1] for a, r in zip(ta, tr)])),
           "arm_reward_last_quarter": _last_quarter(ra), "ref_reward_last_quarter": _last_quarter(rr)}
    for name, split in SPLITS.items():
        a, r = (np.mean([_task_rates(run / "rl_learning" / f"{x}_s{seed}", name, "after") for seed in common],
                        axis=0) for x in (arm, ref))
        out[split] = {"seeds": common, **paired_bootstrap(a, r).to_dict()}
    return out


def _versus_table(key: str, diff: str, cost: str, reward: str, rows: dict[str, dict]) -> str:
    """Markdown rows of ``_versus`` results, keyed by arm or pair name."""
    head = (f"| {key} | seeds | rl_heldout: {diff} [95% CI] | forgetting: {diff} [95% CI] | GRPO seconds: {cost} |"
            f" training reward, last quarter: {reward} |\n|---|---|---|---|---|---|\n")
    return head + "\n".join(
        f"| {k} | {r['rl_heldout']['seeds']} | {_fmt(r['rl_heldout'])} | {_fmt(r['forgetting'])} | "
        f"{r['train_seconds_ratio']:.2f} | {r['arm_reward_last_quarter']:.3f} ({r['ref_reward_last_quarter']:.3f}) |"
        for k, r in rows.items())


def _task_rates(out: Path, name: str, which: str) -> list[float]:
    """Per-task pass@1 (correct / samples) of one evaluation of a run, in the set's task order."""
    return [t["c"] / t["n"] for t in json.loads((out / f"eval_{which}.json").read_text())["sets"][name]["tasks"]]


@app.command()
def main(
    run: Path = Path("runs/tiny"),
    seeds: Annotated[list[int] | None, typer.Option("--seeds")] = None,
    arms: Annotated[list[str] | None, typer.Option("--arms")] = None,
    extra: Annotated[list[str] | None, typer.Option("--extra", help="Overrides for every run.")] = None,
    report_only: Annotated[bool, typer.Option(help="Train nothing; report the runs that exist.")] = False,
    out_json: Path = Path("benchmarks/results/rl_learning.json"),
    figure: Path = Path("benchmarks/figures/rl_learning.png"),
    benchmarks_md: Path = Path("BENCHMARKS.md"),
) -> None:
    from rlvr.stats import paired_bootstrap

    seeds, arms = seeds or [0, 1], arms or list(ARMS)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
    done: dict[str, list[int]] = {}
    for arm in arms:
        for seed in seeds:
            out = run / "rl_learning" / f"{arm}_s{seed}"
            if not report_only:
                _train(run, out, seed, ARMS[arm] + (extra or []))
            if (out / "summary.json").is_file():
                done.setdefault(arm, []).append(seed)
    if not done:
        raise SystemExit(f"no finished runs under {run / 'rl_learning'} for arms {arms} and seeds {seeds}")
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()}: {platform.processor() or platform.machine()}, {_cores()} cores",
        "command": "python benchmarks/rl_learning.py " + " ".join(sys.argv[1:]),
        "extra": extra or [], "arms": {}, "pooled": {},
    }
    for arm, arm_seeds in done.items():
        entries, pooled = [], {}
        for seed in arm_seeds:
            ev = json.loads((run / "rl_learning" / f"{arm}_s{seed}" / "summary.json").read_text())["eval"]
            seconds = round(float(_step_times(run / "rl_learning" / f"{arm}_s{seed}")[0][-1]), 1)
            for name, split in SPLITS.items():
                e = ev[name]
                g = e["gain_pass@1"]
                entries.append({"seed": seed, "split": split, "tasks": e["tasks"],
                                "samples_per_task": e["samples_per_task"], "before": e["before"]["pass@1"],
                                "after": e["after"]["pass@1"], "gain": g["mean"], "ci95": [g["low"], g["high"]],
                                "pass@k_before": e["before"], "pass@k_after": e["after"],
                                "train_seconds": seconds})
        for name, split in SPLITS.items():  # the tasks are the same in every seed: each task's gain averaged over seeds
            b, a = (np.mean([_task_rates(run / "rl_learning" / f"{arm}_s{seed}", name, which) for seed in arm_seeds],
                            axis=0) for which in ("before", "after"))
            pooled[split] = {"seeds": arm_seeds, **paired_bootstrap(b, a).to_dict()}
        results["arms"][arm], results["pooled"][arm] = entries, pooled
    # ablation rows: main against each other arm, and the head-to-head PAIRS
    results["vs_main"] = {arm: v for arm in done if arm != "main" and (v := _versus(run, done, "main", arm))}
    results["pairs"] = {f"{ref} - {arm}": v for ref, arm in PAIRS if (v := _versus(run, done, ref, arm))}
    results["overlap_vs_synchronous"] = _overlap_vs_synchronous(run, done, figure.with_name(figure.stem + "_overlap.png"))
    for alias, arm in ALIASES.items():
        if arm in results["arms"]:
            results["arms"][alias] = results["arms"][arm]
            results.setdefault("aliases", {})[alias] = arm
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    table = _table(results)
    if results["vs_main"]:
        table += ("\n\nMain minus each arm, after RL (paired per task, pooled over the seeds both ran), with the arm's"
                  " GRPO wall seconds (evaluations excluded) relative to main's on the same seeds:\n\n")
        table += _versus_table("arm", "main - arm", "arm / main", "arm (main)", results["vs_main"])
    if results["pairs"]:
        table += "\n\nHead to head: A minus B after RL, paired per task as above:\n\n"
        table += _versus_table("A - B", "A - B", "B / A", "B (A)", results["pairs"])
    if results["overlap_vs_synchronous"]:
        table += ("\n\nOverlap (main) against synchronous at equal wall time, per seed: GRPO seconds per step (mean),"
                  " and both runs cut at the shorter one's GRPO seconds: the steps each had done and its training reward"
                  " over the last quarter of that time:\n\n"
                  "| seed | s/step: main | s/step: synchronous | main / synchronous | equal wall seconds |"
                  " main: steps, reward | synchronous: steps, reward |\n|---|---|---|---|---|---|---|\n")
        table += "\n".join(
            f"| {r['seed']} | {r['main_s_per_step']:.2f} | {r['sync_s_per_step']:.2f} | {r['step_time_ratio']:.2f} | "
            f"{r['equal_wall_seconds']:.0f} | {r['main_steps_at_equal_wall']}, {r['main_reward_last_quarter']:.3f} | "
            f"{r['sync_steps_at_equal_wall']}, {r['sync_reward_last_quarter']:.3f} |"
            for r in results["overlap_vs_synchronous"])
    print(table)
    _figure(results, figure)
    if benchmarks_md.is_file() and BEGIN in benchmarks_md.read_text():
        text = benchmarks_md.read_text()
        head, rest = text.split(BEGIN, 1)
        benchmarks_md.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    print(f"-> {out_json}, {figure}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _fmt(g: dict) -> str:
    return f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"


def _table(results: dict) -> str:
    seeds = sorted({e["seed"] for entries in results["arms"].values() for e in entries})
    lines = ["| arm | split | " + " | ".join(f"seed {s}: before -> after, gain [95% CI]" for s in seeds)
             + " | pooled over seeds: gain [95% CI] |", "|---|---|" + "---|" * (len(seeds) + 1)]
    for arm, pooled_by_split in results["pooled"].items():  # the arms that ran (not the aliases)
        entries = results["arms"][arm]
        for split, pooled in pooled_by_split.items():
            cells = []
            for seed in seeds:
                e = next((e for e in entries if e["seed"] == seed and e["split"] == split), None)
                cells.append("not run" if e is None else f"{e['before']:.3f} -> {e['after']:.3f}, "
                             f"{e['gain']:+.3f} [{e['ci95'][0]:+.3f}, {e['ci95'][1]:+.3f}]")
            lines.append(f"| {arm} | {split} | " + " | ".join(cells) + f" | {_fmt(pooled)} |")
    return "\n".join(lines)


def _figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["pooled"])
    sets = list(SPLITS.values())
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(arms), 3.6))
    width = 0.8 / len(sets)
    for j, s in enumerate(sets):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(arms))]
        g = [results["pooled"][a][s] for a in arms]
        ax.bar(xs, [x["mean"] for x in g], width=width, label=s)
        ax.errorbar(xs, [x["mean"] for x in g], yerr=[[x["mean"] - x["low"] for x in g], [x["high"] - x["mean"] for x in g]],
                    fmt="none", ecolor="black", capsize=3)
    ax.axhline(0, color="black", lw=0.8)
    labels = [a.replace("paper_recipe_", "paper recipe:\n").replace("_", " ") + "\n"
              + f"({len(results['pooled'][a]['rl_heldout']['seeds'])} seed(s))" for a in arms]
    ax.set_xticks(range(len(arms)), labels, fontsize=8)
    ax.set_ylabel("held-out pass@1 gain (after - before)")
    ax.set_title("paired per-task gain, 95% CI, pooled over each arm's seeds", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(app())
