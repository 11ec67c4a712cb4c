"""Run logging for GRPO: step metrics (``rlvr.training.MetricsLog`` JSONL), a completions table
(prompt, completion, reward, advantage, verdicts), and optional wandb (offline unless WANDB_MODE says
otherwise, so a run without network never blocks)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlvr.training.metrics import MetricsLog, read_metrics

__all__ = ["RunLogger"]


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
        elif self.completions_path.exists():  # drop rows of steps after the checkpoint (they are redone)
            kept = [r for r in read_metrics(self.completions_path) if r.get("step", 0) <= resume_step]
            self.completions_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
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
