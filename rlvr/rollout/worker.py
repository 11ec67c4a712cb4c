"""RolloutWorker: holds a copy of the policy and runs the diffusion sampler on its share of prompts.

It is a plain class (unit-testable without Ray); the controller wraps it with ``ray.remote``. Each row
gets its own seed, so a rollout is reproducible whatever else shares its batch or worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from rlvr.batch import RolloutBatch, pad_left
from rlvr.diffusion.sampler import generate

__all__ = ["RolloutWorker"]


class RolloutWorker:
    def __init__(
        self,
        model_path: str,
        sampler: dict[str, Any],
        eos_penalty: float = 0.0,
        dtype: str = "float32",
        device: str | None = None,
        num_threads: int | None = None,
    ):
        from rlvr.diffusion import DiffusionLM

        if num_threads:
            torch.set_num_threads(num_threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = DiffusionLM.from_pretrained(model_path, torch_dtype=getattr(torch, dtype)).to(self.device)
        self.model.eval()
        self.sampler = dict(sampler)
        self.processors = []
        if eos_penalty:
            from rlvr.diffusion.sampler import EosPenalty

            ids = {self.model.eos_token_id, self.model.pad_token_id} - {None}
            self.processors.append(EosPenalty(sorted(ids), additive=eos_penalty))
        self.version = 0

    # ---------------------------------------------------------------- control
    def set_threads(self, n: int) -> int:
        """torch CPU threads of this actor (the controller lends idle learner cores for evaluation)."""
        torch.set_num_threads(max(1, int(n)))
        return torch.get_num_threads()

    def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": self.version, "device": str(self.device),
                "threads": torch.get_num_threads()}

    def update_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> int:
        """Load the learner's weights (full, unsharded tensors) and record their version."""
        from rlvr.grpo.weight_sync import load_full_weights

        load_full_weights(self.model.model, state_dict)
        self.version = int(version)
        return self.version

    def device_id(self) -> str | None:
        from rlvr.grpo.weight_sync import device_id

        return device_id(self.device)

    def open_weight_group(self, addr: str, port: int, prefix: str, backend: str) -> None:
        """Join the pair group learner rank 0 opens for this worker (bucketed weight sync)."""
        from rlvr.grpo.weight_sync import open_pair_group

        self._weight_group = open_pair_group(addr, port, 1, prefix, backend)

    def receive_weights(self, manifest: list, bucket_bytes: int, version: int) -> int:
        """Receive the learner's weights bucket by bucket over the pair group and record their version."""
        from rlvr.grpo.weight_sync import receive_full_weights

        receive_full_weights(self.model.model, self._weight_group, manifest, bucket_bytes)
        self.version = int(version)
        return self.version

    # ---------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        groups: list[int],
        seeds: list[int],
        micro_batch_size: int = 16,
        sampler: dict[str, Any] | None = None,
    ) -> RolloutBatch:
        """Sample one canvas per prompt row (rows of the same group are repeated by the caller).

        ``sampler`` overrides the worker's sampler settings for this call (e.g. evaluation temperature).
        """
        if not (len(prompts) == len(groups) == len(seeds)):
            raise ValueError("prompts, groups and seeds must have the same length")
        start = time.perf_counter()
        pad_id = self.model.pad_token_id
        prompt_ids, prompt_mask = pad_left(prompts, pad_id)
        settings = {**self.sampler, **(sampler or {})}
        responses, steps = [], []
        for lo in range(0, len(prompts), micro_batch_size):
            hi = lo + micro_batch_size
            ids, mask = prompt_ids[lo:hi], prompt_mask[lo:hi]
            keep = int(mask.sum(0).nonzero()[0]) if mask.any() else 0  # drop all-pad columns of this chunk
            out = generate(
                self.model,
                ids[:, keep:].to(self.device),
                attention_mask=mask[:, keep:].to(self.device),
                seeds=list(seeds[lo:hi]),
                logits_processors=self.processors,
                output_history=False,  # decode_step is always recorded; snapshots cost S x B x N
                **settings,
            )
            width = ids.shape[1] - keep
            responses.append(out.sequences[:, width:].cpu())
            steps.append(out.history.decode_step.cpu())
        return RolloutBatch(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=torch.cat(responses),
            group=torch.tensor(groups, dtype=torch.long),
            seeds=torch.tensor(seeds, dtype=torch.long),
            decode_step=torch.cat(steps),
            version=self.version,
            gen_seconds=time.perf_counter() - start,
        )
