"""The typed batches that travel between the controller, rollout workers and learner ranks.

Every tensor field is annotated with its shape; ``B`` = rows (prompt x sample), ``P`` = padded prompt
length (LEFT padded), ``R`` = response canvas length. Batches are plain dataclasses of CPU tensors so
Ray can ship them and tests can build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

__all__ = ["RolloutBatch", "TrainBatch", "pad_left", "concat_batches"]


def pad_left(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to ``[B, P]`` ids and a 0/1 attention mask."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


@dataclass
class RolloutBatch:
    """What a rollout worker returns for its share of prompts."""

    prompt_ids: torch.Tensor  # [B, P] long, left padded
    prompt_mask: torch.Tensor  # [B, P] long 0/1
    response_ids: torch.Tensor  # [B, R] long, the decoded canvas (pads/EOS included)
    group: torch.Tensor  # [B] long, index of the prompt in the controller's step batch
    seeds: torch.Tensor  # [B] long, the per-row sampler seed (reproducible rollouts)
    decode_step: torch.Tensor | None = None  # [B, R] long, step at which each canvas slot was committed
    version: int = 0  # policy weight version the worker generated with
    gen_seconds: float = 0.0

    def __len__(self) -> int:
        return self.response_ids.shape[0]


@dataclass
class TrainBatch:
    """One RL step's training rows, after rewards, substitution and advantages."""

    input_ids: torch.Tensor  # [B, P+R] long: prompt | response
    attention_mask: torch.Tensor  # [B, P+R] long: 0 on left pads only (response pads are visible, as in SFT)
    response_mask: torch.Tensor  # [B, R] bool: response tokens that enter the loss
    advantages: torch.Tensor  # [B] float, one per sequence (broadcast over its tokens)
    rewards: torch.Tensor  # [B] float
    group: torch.Tensor  # [B] long, group id AFTER substitution
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # weight version that generated the rows (the oldest, when chunks differ)
    decode_step: torch.Tensor | None = None  # [B, R] long: the sampler step that decoded each canvas slot

    @property
    def response_length(self) -> int:
        return self.response_mask.shape[1]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: torch.Tensor | slice) -> TrainBatch:
        """Rows ``index`` of every tensor field (meta is shared)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[index] if isinstance(v, torch.Tensor) else v
        return replace(self, **out)

    def shard(self, rank: int, world: int) -> TrainBatch:
        """Contiguous equal shard for data-parallel rank ``rank`` (rows must divide evenly)."""
        n = len(self)
        if n % world:
            raise ValueError(f"batch of {n} rows does not split over {world} learner ranks")
        per = n // world
        return self.select(slice(rank * per, (rank + 1) * per))


def concat_batches(batches: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Concatenate rollout batches (prompts re-padded to a common width, canvases must match)."""
    width = max(b.prompt_ids.shape[1] for b in batches)

    def lpad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)

    return RolloutBatch(
        prompt_ids=torch.cat([lpad(b.prompt_ids, pad_id) for b in batches]),
        prompt_mask=torch.cat([lpad(b.prompt_mask, 0) for b in batches]),
        response_ids=torch.cat([b.response_ids for b in batches]),
        group=torch.cat([b.group for b in batches]),
        seeds=torch.cat([b.seeds for b in batches]),
        decode_step=None
        if any(b.decode_step is None for b in batches)
        else torch.cat([b.decode_step for b in batches]),
        version=min(b.version for b in batches),
        gen_seconds=sum(b.gen_seconds for b in batches),
    )
