"""An i.i.d. split of prompt rows (e.g. the difficulty-filtered RL pool into RL-train and RL-held-out):
rows are assigned by a seeded shuffle, and rows with the same prompt text always land on the same side,
so no prompt is both trained on and evaluated."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

__all__ = ["prompt_key", "split_rows"]


def prompt_key(row: dict[str, Any]) -> str:
    """A hash of the row's prompt (the chat messages, or a plain string)."""
    return hashlib.sha256(json.dumps(row.get("prompt"), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def split_rows(rows: list[dict[str, Any]], fraction: float, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(rest, held_out)``: about ``fraction`` of the distinct prompts held out, chosen uniformly at random
    (``numpy`` permutation with ``seed``); the rows keep their order within each side."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    keys = [prompt_key(r) for r in rows]
    distinct = sorted(set(keys))
    if len(distinct) < 2:
        raise ValueError(f"need at least 2 distinct prompts to split, got {len(distinct)}")
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_out = min(len(distinct) - 1, max(1, round(fraction * len(distinct))))
    held = {distinct[i] for i in order[:n_out]}
    rest = [r for r, k in zip(rows, keys, strict=True) if k not in held]
    out = [r for r, k in zip(rows, keys, strict=True) if k in held]
    return rest, out
