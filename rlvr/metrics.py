"""Run metrics: the JSONL file a run writes (one line per logged step), how per-micro-batch and per-rank
metrics combine into one step's numbers, and the small summaries a run reports (reward trend, pass
rate per group). PNGs are in :mod:`rlvr.plots`, progress lines in :mod:`rlvr.logs`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = [
    "MetricsLog",
    "read_metrics",
    "truncate_jsonl",
    "reduce_metrics",
    "first_last_means",
    "row_field",
    "pass_rate_by",
]


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
        else:
            truncate_jsonl(self.path, resume_step)

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


def truncate_jsonl(path: str | Path, through_step: int) -> None:
    """Keep only the rows of ``path`` with ``step <= through_step`` (resume: the steps after the
    checkpoint are redone, so their rows from the run that stopped must go). A missing file is fine."""
    path = Path(path)
    if path.exists():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= through_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


# How one key combines over micro-batches (inside a learner rank) and over ranks (in the controller),
# by the last component of its name; anything else is a mean weighted by the rows' ``num_tokens``.
SUMMED = frozenset({"num_tokens", "pg_loss"})  # pg_loss: each part carries the global denominator
SHARED = frozenset({"optimizer_steps", "lr", "grad_norm"})  # identical on every part: the first one


def _rule(key: str) -> str:
    leaf = key.rsplit("/", 1)[-1]
    if leaf.endswith("_min"):
        return "min"
    if leaf.endswith("_max") or key.startswith("time/"):  # a step waits for its slowest part
        return "max"
    if leaf in SUMMED:
        return "sum"
    if leaf in SHARED:
        return "first"
    return "mean"


def reduce_metrics(parts: list[dict[str, float]], weight_key: str = "num_tokens") -> dict[str, float]:
    """Combine metric dicts of parts of one step (micro-batches, or data-parallel ranks) into one.

    Minima stay minima, maxima maxima (and ``time/*``), token counts and ``pg_loss`` are summed, values
    that every part shares are taken once, and every other key is a mean weighted by each part's
    ``weight_key`` (the number of loss tokens), so a rank that held more tokens counts for more. Parts
    whose weight is missing count equally; when every weight is 0 the mean is unweighted.
    """
    keys: list[str] = []
    for p in parts:
        keys.extend(k for k in p if k not in keys)
    wkey = next((k for k in keys if k.rsplit("/", 1)[-1] == weight_key), None)
    weights = [float(p.get(wkey, 1.0)) if wkey else 1.0 for p in parts]
    out: dict[str, float] = {}
    for k in keys:
        have = [(float(p[k]), w) for p, w in zip(parts, weights, strict=True) if k in p and p[k] is not None]
        if not have:
            continue
        vals = [v for v, _ in have]
        rule = _rule(k)
        if rule == "min":
            out[k] = min(vals)
        elif rule == "max":
            out[k] = max(vals)
        elif rule == "sum":
            out[k] = sum(vals)
        elif rule == "first":
            out[k] = vals[0]
        else:
            total = sum(w for _, w in have)
            out[k] = (
                sum(v * w for v, w in have) / total if total > 0 else sum(vals) / len(vals)
            )
    return out


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
