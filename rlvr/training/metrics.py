"""Training-side observability: JSONL metrics (one line per logged step), a rich progress bar, a PNG."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "TrainProgress", "read_metrics", "plot_metrics", "first_last_means", "row_field", "pass_rate_by", "plot_before_after"]


class MetricsLog:
    """Append-only JSONL of ``{"step": k, ...}`` rows.

    On resume from step ``k`` the rows after ``k`` (written after the last checkpoint by the run that
    stopped) are dropped first, so the file describes exactly one trajectory.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def log(self, step: int, **metrics: Any) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3), **metrics}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics JSONL; a bad line raises naming the file and line number."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not a JSON line ({exc.msg})") from None
    return rows


def first_last_means(values: list[float], frac: float = 0.25) -> tuple[float, float] | None:
    """Means of the first and the last ``frac`` of a per-step series (at least one step each).

    Per-step RL rewards are noisy (each step sees new prompts); comparing quarter means is how a run
    reports whether its training reward rose. ``None`` for an empty series.
    """
    if not 0 < frac <= 0.5:
        raise ValueError(f"frac must be in (0, 0.5], got {frac}")
    if not values:
        return None
    k = max(1, int(len(values) * frac))
    return sum(values[:k]) / k, sum(values[-k:]) / k


def row_field(row: dict[str, Any], dotted: str) -> Any:
    """``row["a"]["b"]`` for ``dotted="a.b"``; None where a level is missing or not a mapping."""
    for part in dotted.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


def pass_rate_by(keys: list[Any], passed: list[bool]) -> dict[str, float]:
    """Pass rate per key (one key per sample, e.g. each held-out sample's data source), sorted by key;
    a missing key (None) counts under ``"?"``."""
    if len(keys) != len(passed):
        raise ValueError(f"{len(keys)} keys for {len(passed)} samples")
    groups: dict[str, list[bool]] = {}
    for k, p in zip(keys, passed, strict=True):
        groups.setdefault("?" if k is None else str(k), []).append(bool(p))
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}


class TrainProgress:
    """A rich progress bar over optimizer steps that shows the latest metrics (disabled = no output)."""

    def __init__(self, total: int, description: str, start: int = 0, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self._task = self._bar.add_task(description, total=total, completed=start, info="")

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._bar.stop()

    def update(self, step: int, **metrics: float) -> None:
        if not self.enabled:
            return
        info = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))
        self._bar.update(self._task, completed=step, info=info)


def _save(fig: Any, out_png: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def plot_metrics(
    series: Iterable[tuple[str, str | Path]],
    out_png: str | Path,
    keys: tuple[str, ...] = ("loss",),
    smooth: int = 10,
) -> Path:
    """One panel per metric key; one line per (label, jsonl) run; a moving average of ``smooth`` steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(label, read_metrics(path)) for label, path in series]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for label, rows in runs:
            pts = [
                (r["step"], r[key])
                for r in rows
                if isinstance(r.get(key), int | float) and math.isfinite(r[key])
            ]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, alpha=0.3)
            k = max(1, min(smooth, len(ys)))
            avg = [sum(ys[max(0, i - k + 1) : i + 1]) / (i - max(0, i - k + 1) + 1) for i in range(len(ys))]
            ax.plot(xs, avg, label=f"{label} (avg {k})", color=ax.lines[-1].get_color())
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(key)
        ax.set_yscale("log" if key in ("loss", "ce") else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_before_after(
    before: dict[str, float], after: dict[str, float], out_png: str | Path, ylabel: str = "held-out pass@1"
) -> Path:
    """Paired bars per group (e.g. held-out pass@1 per data source before and after RL)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(before) | set(after))
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 2), 3.6))
    ax.bar([x - 0.2 for x in xs], [before.get(n, 0.0) for n in names], width=0.4, label="before RL")
    ax.bar([x + 0.2 for x in xs], [after.get(n, 0.0) for n in names], width=0.4, label="after RL")
    ax.set_xticks(list(xs), names, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_png)
