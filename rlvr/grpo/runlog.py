"""What a GRPO run records: per-step metrics (``metrics.jsonl``), every completion (``completions.jsonl``:
prompt, completion, reward, advantage, verdict reason, seed, weight version), optional wandb (offline
unless WANDB_MODE says otherwise, so a run without network never blocks), and the end-of-run summary
and PNGs. Both JSONL files carry the step number of ``metrics.jsonl`` (``k`` = the k-th step, from 1)
and are cut back to the checkpointed step on resume, so a redone step is never logged twice."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from rlvr.grpo.rollout import Scored
from rlvr.grpo.selection import Selection
from rlvr.metrics import MetricsLog, first_last_means, read_metrics, reduce_metrics, truncate_jsonl

__all__ = ["RunLogger", "step_metrics", "completion_rows", "reward_trend", "plot_run"]

log = logging.getLogger(__name__)


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class RunLogger:
    def __init__(
        self,
        out_dir: str | Path,
        resume_step: int | None = None,
        project: str | None = None,
        config: dict[str, Any] | None = None,
    ):
        self.out = Path(out_dir)
        self.metrics = MetricsLog(self.out / "metrics.jsonl", resume_step=resume_step)
        self.completions_path = self.out / "completions.jsonl"
        if resume_step is None:
            self.completions_path.write_text("")
        else:  # the steps after the checkpoint are redone: drop what the stopped run logged of them
            truncate_jsonl(self.completions_path, resume_step)
        self._wandb = None
        if project:
            import os

            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self._wandb = wandb.init(project=project, dir=str(self.out), config=config or {})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {k: _clean(v) for k, v in metrics.items()}
        self.metrics.log(step, **row)
        if self._wandb is not None:
            self._wandb.log(row, step=step)

    def log_completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        with self.completions_path.open("a") as f:
            for r in rows:
                f.write(json.dumps({"step": step, **{k: _clean(v) for k, v in r.items()}}) + "\n")
        if self._wandb is not None and rows:
            import wandb

            cols = list(rows[0])
            data = [
                [json.dumps(r[c]) if isinstance(r[c], dict | list) else _clean(r[c]) for c in cols]
                for r in rows
            ]
            self._wandb.log({"completions": wandb.Table(columns=cols, data=data)}, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def step_metrics(
    scored: Scored,
    selection: Selection,
    rank_metrics: list[dict[str, float]],
    lengths: torch.Tensor,
    truncated: torch.Tensor,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One step's metrics: rewards, response lengths, group selection (``batch/*``), the learner ranks'
    metrics combined by :func:`rlvr.metrics.reduce_metrics`, verdict reasons as fractions, and ``extra``
    (timings, versions, restarts)."""
    rewards = scored.rewards
    metrics: dict[str, Any] = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "response/length_mean": float(lengths.float().mean()),
        "response/truncated_frac": float(truncated.float().mean()),
        **{f"batch/{k}": v for k, v in selection.metrics.items()},
        **reduce_metrics(rank_metrics),
        **extra,
    }
    reasons: dict[str, int] = {}
    for r in scored.results:
        reasons[r.reason or "pass"] = reasons.get(r.reason or "pass", 0) + 1
    metrics.update({f"verdict/{k}": v / len(scored.results) for k, v in reasons.items()})
    return metrics


def completion_rows(scored: Scored, index: torch.Tensor, adv: torch.Tensor) -> list[dict[str, Any]]:
    """One row per generated sample; ``advantage`` is None for a group that did not train. A group in
    several slots (substitution copies) has the same advantages in each: the first slot's are shown."""
    n = scored.n
    adv_of_group: dict[int, torch.Tensor] = {}
    for slot, g in enumerate(index.tolist()):
        adv_of_group.setdefault(int(g), adv[slot])
    rows = []
    for r, res in enumerate(scored.results):
        g, j = divmod(r, n)
        row = scored.stream.rows[scored.prompt_idx[g]]
        rows.append(
            {
                "prompt": row["prompt"][-1]["content"][-300:],
                "completion": scored.texts[r],
                "reward": res.reward,
                "advantage": float(adv_of_group[g][j]) if g in adv_of_group else None,
                "reason": res.reason,
                "seed": int(scored.rollout.seeds[r]),
                "version": scored.rollout.version,
            }
        )
    return rows


def reward_trend(metrics_path: Path) -> dict[str, float]:
    """Mean training reward over the first and the last quarter of the run's steps."""
    rows = read_metrics(metrics_path) if metrics_path.exists() else []
    trend = first_last_means([r["reward/mean"] for r in rows if "reward/mean" in r])
    if trend is None:
        return {}
    log.info("train reward: %.3f (first quarter of steps) -> %.3f (last quarter)", *trend)
    return {"train_reward_first_quarter": trend[0], "train_reward_last_quarter": trend[1]}


def plot_run(
    out: Path, by_group: dict[str, Any] | None, group_by: str | None, evals: dict[str, Any] | None = None
) -> None:
    """``curves.png`` (reward, length, clip fraction, informative groups), ``heldout_by_group.png`` and
    ``heldout_gain.png`` (pass@1 per held-out set before and after, with the paired gain's 95% CI)."""
    from rlvr.plots import plot_before_after, plot_metrics

    keys = ("reward/mean", "response/length_mean", "actor/clip_frac", "batch/solve_partial")
    try:
        plot_metrics([("grpo", out / "metrics.jsonl")], out / "curves.png", keys=keys, smooth=3)
        if by_group and by_group.get("before") and by_group.get("after"):
            plot_before_after(
                by_group["before"], by_group["after"], out / "heldout_by_group.png",
                ylabel=f"held-out pass@1 by {group_by}",
            )
        if evals:
            before = {k: v["before"]["pass@1"] for k, v in evals.items()}
            after = {k: v["after"]["pass@1"] for k, v in evals.items()}
            ci = {k: (before[k] + v["gain_pass@1"]["low"], before[k] + v["gain_pass@1"]["high"]) for k, v in evals.items()}
            plot_before_after(before, after, out / "heldout_gain.png", ylabel="held-out pass@1", after_ci=ci,
                              title="bars: pass@1; whiskers: before + 95% CI of the paired per-task gain")
    except Exception as exc:  # a plot must never cost the run its summary
        log.warning("could not render the run's PNGs: %s", exc)
