"""Decoding-order analysis: in what order did the sampler fill the canvas?

Input is a decode-step history: for each canvas position, the step at which it was committed
(``DecodeHistory.decode_step``; ``-1`` = never decoded, ignored by every statistic). Per sample:

* ``spearman``: rank correlation of decode step with position (ties get average ranks). 1 means
  strictly left to right, -1 right to left, about 0 no relation. NaN when undefined (fewer than two
  decoded positions, or all decoded at one step).
* ``out_of_order``: fraction of decoded positions committed strictly BEFORE some position to their
  left (``step[j] < max(step[i] for decoded i < j)``). 0 for left-to-right decoding (blocks of parallel
  commits included), close to 1 for right to left.
* ``sketch_first``: among the tokens committed in the first ``early`` fraction of the steps (step
  ``< early * num_steps``), the fraction lying in the right half of the canvas (position ``>= L / 2``).
  0 for left to right, about 0.5 for a random order, 1 for writing the end first (e.g. an EOS tail).
  NaN when no token was committed that early.
* ``tokens_per_step``: decoded positions / steps run.

``num_steps`` defaults to ``max(step) + 1`` (the last step always commits something).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GenerationRecord",
    "OrderStats",
    "history_records",
    "order_stats",
    "plot_order_heatmap",
    "read_generations",
    "summarize",
]


@dataclass(frozen=True)
class OrderStats:
    n_positions: int
    n_decoded: int
    num_steps: int
    tokens_per_step: float
    spearman: float
    out_of_order: float
    sketch_first: float


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=float)
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of ranks start+1 .. end
            start = end
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the average ranks; NaN if either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    rx, ry = _average_ranks(x) - (len(x) + 1) / 2, _average_ranks(y) - (len(y) + 1) / 2
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


def order_stats(
    decode_step: Sequence[int] | Any, num_steps: int | None = None, early: float = 0.25
) -> OrderStats:
    """Order statistics of one sample; ``decode_step`` is a list / 1-D array / tensor of ints."""
    steps = np.asarray(
        decode_step.tolist() if hasattr(decode_step, "tolist") else decode_step, dtype=np.int64
    )
    if steps.ndim != 1:
        raise ValueError(f"decode_step must be one-dimensional, got shape {steps.shape}")
    L = len(steps)
    pos = np.nonzero(steps >= 0)[0]
    s = steps[pos]
    if num_steps is None:
        num_steps = int(s.max()) + 1 if len(s) else 0
    # left-to-right check: the latest step among the decoded positions strictly to the left
    left_max = np.maximum.accumulate(np.concatenate([[-1], s[:-1]])) if len(s) else s
    early_mask = s < early * num_steps
    n_early = int(early_mask.sum())
    return OrderStats(
        n_positions=L,
        n_decoded=len(s),
        num_steps=num_steps,
        tokens_per_step=len(s) / num_steps if num_steps else math.nan,
        spearman=spearman(pos.astype(float), s.astype(float)),
        out_of_order=float((s < left_max).mean()) if len(s) else math.nan,
        sketch_first=float((pos[early_mask] >= L / 2).mean()) if n_early else math.nan,
    )


def summarize(stats: Sequence[OrderStats]) -> dict[str, float]:
    """Mean of each statistic over samples (NaNs skipped)."""
    out = {}
    for key in ("tokens_per_step", "spearman", "out_of_order", "sketch_first"):
        vals = [getattr(st, key) for st in stats if not math.isnan(getattr(st, key))]
        out[key] = float(np.mean(vals)) if vals else math.nan
    return out


# --------------------------------------------------------------------------- JSONL of generations
@dataclass(frozen=True)
class GenerationRecord:
    decode_step: list[int]
    num_steps: int | None = None
    text: str | None = None
    tokens: list[int] | None = None
    id: str | None = None


def _parse_record(obj: Any) -> GenerationRecord:
    if not isinstance(obj, dict):
        raise ValueError("a row must be a JSON object")
    steps = obj.get("decode_step")
    if not isinstance(steps, list) or not steps:
        raise ValueError("field 'decode_step' must be a non-empty list of integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in steps):
        raise ValueError("field 'decode_step' must hold integers >= -1 (-1 = never decoded)")
    num_steps = obj.get("num_steps")
    if num_steps is not None and (not isinstance(num_steps, int) or num_steps <= max(steps)):
        raise ValueError(f"field 'num_steps' must be an integer > max(decode_step) = {max(steps)}")
    tokens = obj.get("tokens")
    if tokens is not None and (not isinstance(tokens, list) or len(tokens) != len(steps)):
        raise ValueError(f"field 'tokens' must be a list as long as 'decode_step' ({len(steps)})")
    rid = obj.get("id")
    return GenerationRecord(steps, num_steps, obj.get("text"), tokens, None if rid is None else str(rid))


def read_generations(path: str | Path) -> list[GenerationRecord]:
    """Read a JSONL of generations; a bad row raises ``ValueError`` naming the file and line number."""
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(_parse_record(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as exc:
                raise ValueError(f"{path} line {lineno}: {exc}") from None
    if not records:
        raise ValueError(f"{path}: no generations (empty file)")
    return records


def history_records(
    output: Any, tokenizer: Any = None, prompt_length: int | None = None
) -> list[dict[str, Any]]:
    """JSONL-ready rows (``decode_step``, ``num_steps``, ``tokens``, optional ``text``) from a
    ``GenerationOutput``, for ``rlvr viz order``."""
    hist = output.history
    L = hist.decode_step.shape[1]
    canvas = output.sequences[:, -L:] if prompt_length is None else output.sequences[:, prompt_length:]
    rows = []
    for b in range(canvas.shape[0]):
        row = {
            "decode_step": hist.decode_step[b].tolist(),
            # the row's own step count: under threshold decoding rows finish at different steps
            "num_steps": int(hist.decode_step[b].max()) + 1,
            "tokens": canvas[b].tolist(),
        }
        if tokenizer is not None:
            row["text"] = tokenizer.decode(canvas[b].tolist())
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- heatmap
def plot_order_heatmap(
    decode_steps: Sequence[Sequence[int]],
    out: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "Decoding order",
    normalize: bool = True,
) -> Path:
    """PNG heatmap: one row per sample, one column per canvas position, colour = decode step.

    ``normalize`` divides each row by its step count so samples with different step budgets share one
    colour scale (0 = first step, 1 = last). Never-decoded positions and ragged ends are grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, width = len(decode_steps), max(len(r) for r in decode_steps)
    grid = np.full((n, width), np.nan)
    for i, row in enumerate(decode_steps):
        arr = np.asarray(row, dtype=float)
        arr[arr < 0] = np.nan
        if normalize and np.nanmax(arr, initial=0) > 0:
            arr = arr / np.nanmax(arr)
        grid[i, : len(arr)] = arr
    fig, ax = plt.subplots(figsize=(min(16, 3 + width / 16), min(12, 1.5 + 0.3 * n)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_xlabel("canvas position")
    ax.set_ylabel("sample")
    if labels is not None and n <= 40:
        ax.set_yticks(range(n), [str(lb) for lb in labels])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="decode step / last step" if normalize else "decode step")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
