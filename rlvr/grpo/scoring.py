"""Rewards stage of a GRPO step: rollout canvases -> text -> verifier (over the sandbox service) ->
one :class:`~rlvr.rewards.RewardResult` per row, scored in a thread pool while other chunks still
generate."""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rlvr.algos import response_lengths
from rlvr.batch import RolloutBatch
from rlvr.grpo.config import GRPOConfig
from rlvr.grpo.prompts import PromptStream

__all__ = ["Scorer"]

log = logging.getLogger(__name__)


class Scorer:
    """The run's verifier (with a local sandbox service when it needs one and none is configured) and the
    thread pool that scores rollout chunks. Enter it in the run's exit stack."""

    def __init__(self, cfg: GRPOConfig, tokenizer: Any, pad_id: int, eos_id: int | None):
        self.cfg, self.tokenizer, self.pad_id, self.eos_id = cfg, tokenizer, pad_id, eos_id
        self._stack = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlvr-reward")

    def __enter__(self) -> Scorer:
        from rlvr.rewards import OverlongPolicy, registry

        rc = self.cfg.reward
        try:
            urls = list(rc.sandbox_urls)
            if urls:  # replicas may still be starting (KubeRay, SLURM): no step before all answer
                from rlvr.sandbox.client import wait_until_healthy

                wait_until_healthy(urls, rc.sandbox_wait_s, log=log.info)
            if rc.verifier in registry.SANDBOX_VERIFIERS:
                from rlvr.sandbox.testing import sandbox_or_local

                urls = self._stack.enter_context(sandbox_or_local(urls, announce=log.info))
            if urls:
                os.environ["RLVR_SANDBOX_URLS"] = ",".join(urls)  # the code verifiers' default endpoint
            self.verifier = registry.get(rc.verifier, **rc.verifier_kwargs)
        except BaseException:
            self.close()
            raise
        self.overlong = OverlongPolicy(rc.overlong, self.cfg.rollout.sampler.max_new_tokens, rc.overlong_buffer)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stack.close()

    def texts(self, batch: RolloutBatch) -> tuple[list[str], list[int], list[bool]]:
        """Each row's completion text (up to its first EOS/pad), token count and truncation flag."""
        lengths, truncated = response_lengths(batch.response_ids, self.pad_id, self.eos_id)
        texts = [
            self.tokenizer.decode(batch.response_ids[r, : int(lengths[r])].tolist(), skip_special_tokens=True)
            for r in range(len(batch))
        ]
        return texts, [int(x) for x in lengths], [bool(x) for x in truncated]

    def submit(self, stream: PromptStream, prompt_idx: list[int], batch: RolloutBatch) -> tuple[list[str], Future]:
        """Score ``batch`` (row ``r`` answers prompt ``prompt_idx[batch.group[r]]``) in the background;
        returns the rows' completion texts and the future of their results."""
        from rlvr.rewards.base import Sample, score_sync

        texts, lengths, truncated = self.texts(batch)
        samples = [
            Sample(
                row=stream.rows[prompt_idx[int(batch.group[r])]],
                completion=texts[r],
                truncated=truncated[r],
                num_tokens=lengths[r],
            )
            for r in range(len(batch))
        ]
        return texts, self._pool.submit(
            score_sync, self.verifier, samples, deadline_s=self.cfg.reward.deadline_s, overlong=self.overlong
        )
