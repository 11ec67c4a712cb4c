"""Run logging: a JSONL metrics file, a completions table, optional wandb, and PNG curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "plot_curves"]


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class RunLogger:
    """Appends one JSON object per step to ``metrics.jsonl`` and completion rows to ``completions.jsonl``.

    wandb is optional (``project=None`` disables it) and runs offline unless WANDB_MODE says otherwise,
    so a run on a machine without network never blocks on it.
    """

    def __init__(self, out_dir: str | Path, project: str | None = None, config: dict[str, Any] | None = None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out / "metrics.jsonl"
        self.completions_path = self.out / "completions.jsonl"
        self._wandb = None
        if project:
            import os

            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self._wandb = wandb.init(project=project, dir=str(self.out), config=config or {}, resume="allow")

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpointed ``step`` so curves have no duplicates."""
        for path in (self.metrics_path, self.completions_path):
            if not path.exists():
                continue
            keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= step]
            path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            self._wandb.log(row, step=step)

    def log_completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        with self.completions_path.open("a") as f:
            for r in rows:
                f.write(json.dumps({"step": step, **{k: _clean(v) for k, v in r.items()}}) + "\n")
        if self._wandb is not None and rows:
            import wandb

            cols = list(rows[0].keys())
            table = wandb.Table(columns=cols, data=[[json.dumps(r[c]) if isinstance(r[c], (dict, list)) else r[c] for c in cols] for r in rows])
            self._wandb.log({"completions": table}, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def plot_curves(metrics_path: str | Path, out_png: str | Path, keys: list[str]) -> Path:
    """One panel per metric key over steps, from a metrics JSONL file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(ln) for ln in Path(metrics_path).read_text().splitlines() if ln.strip()]
    keys = [k for k in keys if any(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)
