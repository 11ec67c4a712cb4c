"""The PNGs runs write: metric curves over steps, and before/after bars per group."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlvr.metrics import read_metrics

__all__ = ["plot_metrics", "plot_before_after"]


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
    before: dict[str, float],
    after: dict[str, float],
    out_png: str | Path,
    ylabel: str = "held-out pass@1",
    after_ci: dict[str, tuple[float, float]] | None = None,
    title: str | None = None,
) -> Path:
    """Paired bars per group (e.g. held-out pass@1 per data source before and after RL); ``after_ci``:
    a confidence interval drawn on each after bar (e.g. before + the paired gain's interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(before) | set(after))
    xs = range(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 2), 3.6))
    ax.bar([x - 0.2 for x in xs], [before.get(n, 0.0) for n in names], width=0.4, label="before RL")
    ax.bar([x + 0.2 for x in xs], [after.get(n, 0.0) for n in names], width=0.4, label="after RL")
    if after_ci:
        for x, n in zip(xs, names, strict=True):
            if n in after_ci:
                lo, hi = after_ci[n]
                ax.errorbar(x + 0.2, after.get(n, 0.0), yerr=[[after.get(n, 0.0) - lo], [hi - after.get(n, 0.0)]],
                            fmt="none", ecolor="black", capsize=4)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks(list(xs), names, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_png)
