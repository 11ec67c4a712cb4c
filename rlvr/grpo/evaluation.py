"""Held-out evaluation during a GRPO run, on one or more sets (``data.heldout``): per task, ``trainer.
eval_samples`` samples (binary: reward >= 1) drawn with the same sampling seeds at every evaluation (common
random numbers: an unchanged policy scores exactly the same), giving pass@1 and unbiased pass@k per set,
per value of ``trainer.eval_group_by``, and the per-task counts that :func:`compare_evals` pairs up into a
gain with a bootstrap confidence interval over tasks."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterator
from typing import Any

from rlvr.eval.passk import mean_pass_at_k
from rlvr.grpo.config import GRPOConfig
from rlvr.grpo.prompts import PromptStream
from rlvr.grpo.rollout import Rollouts
from rlvr.logs import Progress
from rlvr.metrics import pass_rate_by, row_field
from rlvr.stats import paired_bootstrap

__all__ = ["HeldoutEval", "compare_evals", "PASS_KS"]

log = logging.getLogger(__name__)
PASS_KS = (1, 4, 8, 16)  # reported where k <= trainer.eval_samples
EVAL_PARTS = 8  # a set is generated in this many parts, for progress


class HeldoutEval:
    def __init__(self, cfg: GRPOConfig, sets: dict[str, PromptStream], rollouts: Rollouts):
        self.cfg, self.sets, self.rollouts = cfg, sets, rollouts

    def __call__(self, label: str) -> dict[str, Any]:
        """``{"pass@1", "samples", "by_group"}`` of the first (primary) set, and ``"sets": {name: {"pass@1",
        "pass@k", "samples", "by_group", "tasks": [{"c", "n", "group"}]}}`` for every set."""
        sets = {}
        with self._lend_learner_threads():
            for name, stream in self.sets.items():
                sets[name] = self._score(name, stream, label)
        first = next(iter(sets.values()))
        out: dict[str, Any] = {"pass@1": first["pass@1"], "samples": first["samples"]}
        if "by_group" in first:
            out["by_group"] = first["by_group"]
        out["sets"] = sets
        return out

    def _score(self, name: str, stream: PromptStream, label: str) -> dict[str, Any]:
        t = self.cfg.trainer
        n = t.eval_samples
        sampler = {**t.eval_sampler, "temperature": t.eval_temperature}
        passed: list[bool] = []  # prompt-major: sample r answers prompt r // n
        parts = max(1, min(EVAL_PARTS, len(stream)))
        bounds = [round(len(stream) * p / parts) for p in range(parts + 1)]
        with Progress(len(stream), f"held-out {name} ({label})", logger=log) as bar:
            for lo, hi in itertools.pairwise(bounds):  # the same parts every time: the same batches
                scored = self.rollouts.run(stream, list(range(lo, hi)), -1, n, sampler)
                passed += [r.reward >= 1.0 for r in scored.results]
                bar.update(hi, **{"pass@1": sum(passed) / len(passed)})
        counts = [sum(passed[i * n : (i + 1) * n]) for i in range(len(stream))]
        groups = [row_field(row, t.eval_group_by) if t.eval_group_by else None for row in stream.rows]
        res: dict[str, Any] = {
            "pass@1": sum(passed) / max(1, len(passed)),
            "pass@k": {str(k): mean_pass_at_k([n] * len(counts), counts, k) for k in PASS_KS if k <= n},
            "samples": len(passed),
            "tasks": [{"c": c, "n": n, "group": g} for c, g in zip(counts, groups, strict=True)],
        }
        log.info("held-out %s pass@1 (%s): %.3f over %d samples of %d tasks", name, label, res["pass@1"],
                 len(passed), len(counts))
        if t.eval_group_by:
            res["by_group"] = pass_rate_by([groups[r // n] for r in range(len(passed))], passed)
            if len(res["by_group"]) > 1:
                log.info("  by %s: %s", t.eval_group_by, "  ".join(f"{k} {v:.2f}" for k, v in res["by_group"].items()))
        return res

    @contextlib.contextmanager
    def _lend_learner_threads(self) -> Iterator[None]:
        """On CPU the learner ranks idle during held-out evaluation: the rollout workers borrow their
        threads (the tiny run's evaluation takes half the time), and give them back after."""
        import ray

        lc, rc = self.cfg.learner, self.cfg.rollout
        workers = self.rollouts.workers
        if not lc.threads or rc.num_gpus_per_worker > 0:
            yield
            return
        boost = lc.threads * -(-(rc.num_workers + lc.num_ranks) // rc.num_workers)

        def set_all(k: int) -> None:
            try:
                ray.get([w.set_threads.remote(k) for w in workers], timeout=60)
            except (ray.exceptions.RayError, TimeoutError) as exc:  # a dead worker only costs speed
                log.warning("could not set rollout threads to %d: %s", k, exc)

        set_all(boost)
        try:
            yield
        finally:
            set_all(lc.threads)


def compare_evals(before: dict[str, Any], after: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Per set: pass@k before and after, and the paired gain in per-task pass@1 (after - before) with its
    95% bootstrap confidence interval over tasks (:func:`rlvr.stats.paired_bootstrap`)."""
    out = {}
    for name, a in after["sets"].items():
        b = before["sets"][name]
        pb = [t["c"] / t["n"] for t in b["tasks"]]
        pa = [t["c"] / t["n"] for t in a["tasks"]]
        gain = paired_bootstrap(pb, pa, seed=seed)
        out[name] = {
            "tasks": len(pa),
            "samples_per_task": a["tasks"][0]["n"] if a["tasks"] else 0,
            "before": {"pass@1": b["pass@1"], **{f"pass@{k}": v for k, v in b["pass@k"].items()}},
            "after": {"pass@1": a["pass@1"], **{f"pass@{k}": v for k, v in a["pass@k"].items()}},
            "gain_pass@1": gain.to_dict(),
        }
        if "by_group" in a:
            out[name]["by_group"] = {"before": b.get("by_group"), "after": a["by_group"]}
        log.info("held-out %s: pass@1 %.3f -> %.3f, paired gain %s", name, b["pass@1"], a["pass@1"], gain)
    return out
