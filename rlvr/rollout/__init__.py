"""Rollout generation: diffusion sampler workers (Ray actors) and an optional vLLM baseline."""

from rlvr.rollout.worker import RolloutWorker

__all__ = ["RolloutWorker"]
