"""Rollout stage of a GRPO step: spread a step's rows over the rollout workers, wait for their chunks,
score each chunk as it lands, and re-issue a chunk whose worker died once Ray has restarted it (with
the current weights). The result is a :class:`Scored` batch of whole groups."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from rlvr.batch import RolloutBatch, concat_batches
from rlvr.engine.rng import step_seed
from rlvr.grpo.prompts import PromptStream
from rlvr.grpo.scoring import Scorer
from rlvr.grpo.weight_sync import WeightSync

__all__ = ["Pending", "Scored", "Rollouts"]

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A submitted rollout: its prompts and the Ray futures of its chunks."""

    stream: PromptStream
    prompt_idx: list[int]
    n: int
    step: int
    sampler: dict | None
    chunks: list[tuple]
    t0: float
    futures: list = field(default_factory=list)


@dataclass
class Scored:
    """Generated and scored groups. Group ``g`` answers prompt ``prompt_idx[g]`` of ``stream``; its rows
    are ``g*n .. g*n+n-1`` of ``rollout`` and ``results``."""

    stream: PromptStream
    prompt_idx: list[int]
    n: int
    rollout: RolloutBatch
    results: list[Any]  # RewardResult per row
    texts: list[str]  # completion text per row (what the verifier saw)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def num_groups(self) -> int:
        return len(self.prompt_idx)

    @property
    def rewards(self) -> torch.Tensor:
        """``[num_groups, n]`` float rewards."""
        return torch.tensor([r.reward for r in self.results], dtype=torch.float).view(-1, self.n)

    def extend(self, more: Scored, pad_id: int) -> Scored:
        """These groups followed by ``more``'s (same stream and n); timings add up."""
        if more.stream is not self.stream or more.n != self.n:
            raise ValueError("can only extend with groups of the same prompt stream and group size")
        shifted = replace(more.rollout, group=more.rollout.group + self.num_groups)
        timing = {k: self.timing.get(k, 0.0) + more.timing.get(k, 0.0) for k in {*self.timing, *more.timing}}
        return Scored(
            self.stream,
            self.prompt_idx + more.prompt_idx,
            self.n,
            concat_batches([self.rollout, shifted], pad_id),
            self.results + more.results,
            self.texts + more.texts,
            timing,
        )


class Rollouts:
    """Launches and collects rollouts on ``workers``; scoring by ``scorer``; restarts via ``weights``."""

    def __init__(
        self,
        workers: list[Any],
        scorer: Scorer,
        weights: WeightSync,
        seed: int,
        micro_batch_size: int,
        max_restarts: int,
        pad_id: int,
        worker_pids: list[int],
        on_submit: Any = None,
    ):
        self.workers, self.scorer, self.weights = workers, scorer, weights
        self.seed, self.micro_batch_size, self.max_restarts, self.pad_id = seed, micro_batch_size, max_restarts, pad_id
        self.on_submit = on_submit or (lambda step: None)
        self.worker_pids = list(worker_pids)  # updated when Ray restarts a worker
        self.restarts = 0  # chunks re-issued after a worker died (whole run)

    def launch(
        self, stream: PromptStream, prompt_idx: list[int], step: int, n: int, sampler: dict | None = None
    ) -> Pending:
        """Submit ``len(prompt_idx) * n`` rows, spread contiguously and evenly over the workers. Row ``j``
        of prompt ``i`` at ``step`` always gets the same seed, whatever else shares its batch."""
        prompts, groups, seeds = [], [], []
        for g, i in enumerate(prompt_idx):
            for j in range(n):
                prompts.append(stream.token_ids[i])
                groups.append(g)
                seeds.append(step_seed(self.seed, step, i, j) % (2**62))
        k = len(self.workers)
        bounds = [round(len(prompts) * w / k) for w in range(k + 1)]
        chunks = [
            (w, prompts[bounds[w] : bounds[w + 1]], groups[bounds[w] : bounds[w + 1]], seeds[bounds[w] : bounds[w + 1]])
            for w in range(k)
            if bounds[w + 1] > bounds[w]
        ]
        pending = Pending(stream, prompt_idx, n, step, sampler, chunks, time.perf_counter())
        pending.futures = [self._generate(w, p, g, s, sampler) for w, p, g, s in chunks]
        self.on_submit(step)
        return pending

    def _generate(self, w: int, prompts, groups, seeds, sampler):
        return self.workers[w].generate.remote(prompts, groups, seeds, self.micro_batch_size, sampler)

    def finish(self, pending: Pending) -> Scored:
        """Wait for every chunk, scoring each as it lands (rewards overlap the remaining generation)."""
        import ray
        from ray.exceptions import RayActorError

        futures, chunks = pending.futures, pending.chunks
        batches: list[RolloutBatch | None] = [None] * len(futures)
        scored: list[tuple[list[str], Future] | None] = [None] * len(futures)
        waiting = {f: i for i, f in enumerate(futures)}
        attempts = [0] * len(futures)
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            i = waiting.pop(ready[0])
            try:
                batch = ray.get(ready[0])
            except RayActorError as exc:
                attempts[i] += 1
                self.restarts += 1
                if attempts[i] > self.max_restarts + 1:
                    raise RuntimeError(f"rollout chunk {i} failed {attempts[i]} times") from exc
                w, p, g, s = chunks[i]
                log.warning("rollout worker %d died (%s); re-issuing its chunk", w, type(exc).__name__)
                self.wait_for_worker(w)
                waiting[self._generate(w, p, g, s, pending.sampler)] = i
                continue
            batches[i] = batch
            scored[i] = self.scorer.submit(pending.stream, pending.prompt_idx, batch)
        t_gen = time.perf_counter() - pending.t0
        done = [s for s in scored if s is not None]
        results = [r for _, f in done for r in f.result()]
        texts = [t for chunk, _ in done for t in chunk]
        t_all = time.perf_counter() - pending.t0
        rollout = concat_batches([b for b in batches if b is not None], self.pad_id)
        timing = {"time/generate": t_gen, "time/reward_tail": t_all - t_gen}
        return Scored(pending.stream, list(pending.prompt_idx), pending.n, rollout, results, texts, timing)

    def run(
        self, stream: PromptStream, prompt_idx: list[int], step: int, n: int, sampler: dict | None = None
    ) -> Scored:
        """Generate ``n`` samples of each prompt and score them."""
        return self.finish(self.launch(stream, prompt_idx, step, n, sampler))

    def wait_for_worker(self, w: int, timeout_s: float = 300) -> None:
        """Block until Ray has restarted worker ``w``, then give it the current weights."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.worker_pids[w] = ray.get(self.workers[w].ping.remote(), timeout=60)["pid"]
                break
            except (RayActorError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        self.weights.restore(w)
