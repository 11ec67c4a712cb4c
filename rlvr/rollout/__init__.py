"""Rollout generation: diffusion sampler workers (Ray actors) and an optional vLLM baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from rlvr.rollout.vllm_worker import VLLMRolloutWorker
from rlvr.rollout.worker import RolloutWorker

__all__ = ["ROLLOUT_ENGINES", "RolloutEngine", "RolloutWorker", "VLLMRolloutWorker"]


class RolloutEngine(NamedTuple):
    """A ``rollout.engine`` choice: the worker class and the extra keyword arguments it takes from the
    rollout config (beyond the shared model path, sampler, eos penalty, dtype, device, threads)."""

    worker: type
    extra_kwargs: Callable[[Any], dict[str, Any]]


# rollout.engine -> worker; vllm is imported inside VLLMRolloutWorker.__init__, so listing it is free
ROLLOUT_ENGINES: dict[str, RolloutEngine] = {
    "diffusion": RolloutEngine(RolloutWorker, lambda rollout_cfg: {}),
    "vllm": RolloutEngine(VLLMRolloutWorker, lambda rollout_cfg: {"engine": rollout_cfg.vllm.model_dump()}),
}
