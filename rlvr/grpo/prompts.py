"""The controller's prompt stream: rows in the rlvr.data schema, tokenised once, with a resumable cursor.

The cursor is (epoch, position) over a permutation seeded by ``shuffle_seed + epoch``, so saving two
integers is enough to resume a run on exactly the prompt where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PromptStream", "Cursor", "load_rows"]


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Load JSONL/JSON/parquet prompt rows with ``datasets`` (local files only)."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"prompt file {str(p)!r} does not exist")
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(p.suffix)
    if kind is None:
        raise ValueError(f"prompt file {str(p)!r}: unsupported extension {p.suffix!r} (jsonl, json, parquet)")
    ds = datasets.load_dataset(kind, data_files=str(p), split="train")
    return [dict(r) for r in ds]


@dataclass
class Cursor:
    epoch: int = 0
    position: int = 0


class PromptStream:
    def __init__(
        self, rows: list[dict[str, Any]], tokenizer: Any, max_prompt_length: int, shuffle_seed: int = 0
    ):
        self.rows: list[dict[str, Any]] = []
        self.token_ids: list[list[int]] = []
        self.dropped_too_long = 0
        for i, row in enumerate(rows):
            messages = row.get("prompt")
            if not isinstance(messages, list) or not messages:
                raise ValueError(f"prompt row {i}: field 'prompt' must be a non-empty list of chat messages")
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "input_ids"):  # transformers may return a BatchEncoding
                ids = ids["input_ids"]
            if len(ids) > max_prompt_length:
                self.dropped_too_long += 1
                continue
            self.rows.append(row)
            self.token_ids.append(list(ids))
        if not self.rows:
            raise ValueError("no usable prompts (all rows longer than data.max_prompt_length?)")
        self.shuffle_seed = shuffle_seed
        self.cursor = Cursor()

    def __len__(self) -> int:
        return len(self.rows)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(self.shuffle_seed + epoch).permutation(len(self.rows))

    def next_batch(self, k: int) -> list[int]:
        """Indices of the next ``k`` prompts; wraps into the next epoch (a new permutation)."""
        out: list[int] = []
        while len(out) < k:
            order = self._order(self.cursor.epoch)
            take = order[self.cursor.position : self.cursor.position + (k - len(out))]
            out.extend(int(i) for i in take)
            self.cursor.position += len(take)
            if self.cursor.position >= len(order):
                self.cursor = Cursor(self.cursor.epoch + 1, 0)
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.cursor.epoch, "position": self.cursor.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.cursor = Cursor(int(state["epoch"]), int(state["position"]))
