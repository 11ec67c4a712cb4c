"""Placing the GRPO actors on the Ray cluster: one placement group holding the learner ranks (DeepSpeed
data-parallel, rank 0 hosts the process group) and the rollout workers, side by side (``separate``)
or one learner rank and one worker per bundle sharing its GPU (``colocate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.grpo.config import GRPOConfig

__all__ = ["Actors", "start_actors"]


@dataclass
class Actors:
    workers: list[Any]  # rollout workers (Ray actor handles)
    learners: list[Any]  # learner ranks, rank order
    placement_group: Any
    worker_pids: list[int]


def _resources(cpu: float, gpu: float) -> dict[str, float]:
    return {"CPU": cpu, **({"GPU": gpu} if gpu else {})}


def start_actors(cfg: GRPOConfig) -> Actors:
    """Create the placement group and every actor, join the learners' process group, and ping them all.
    The caller removes ``placement_group`` when the run ends."""
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from rlvr.learner import LearnerRank
    from rlvr.rollout import ROLLOUT_ENGINES

    lc, rc = cfg.learner, cfg.rollout
    if cfg.trainer.placement == "colocate":  # learner rank i and rollout worker i share bundle i
        bundle = _resources(
            lc.num_cpus_per_rank + rc.num_cpus_per_worker, max(lc.num_gpus_per_rank, rc.num_gpus_per_worker)
        )
        bundles = [bundle] * max(lc.num_ranks, rc.num_workers)
        learner_bundle, worker_bundle = list(range(lc.num_ranks)), list(range(rc.num_workers))
    else:
        bundles = [_resources(lc.num_cpus_per_rank, lc.num_gpus_per_rank)] * lc.num_ranks + [
            _resources(rc.num_cpus_per_worker, rc.num_gpus_per_worker)
        ] * rc.num_workers
        learner_bundle = list(range(lc.num_ranks))
        worker_bundle = [lc.num_ranks + i for i in range(rc.num_workers)]
    pg = placement_group(bundles, strategy="PACK")
    ray.get(pg.ready(), timeout=120)

    def on(b: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=b)

    def env(gpus: float) -> dict[str, Any]:
        # the accelerator follows the ACTOR's resources, not the driver's node
        accel = "cuda" if gpus > 0 else "cpu"
        return {"env_vars": {"OMP_NUM_THREADS": str(max(1, lc.threads)), "DS_ACCELERATOR": accel}}

    # colocated: the bundle holds both CPU budgets, and one GPU that the two actors split
    share = 0.5 if cfg.trainer.placement == "colocate" else 1.0
    engine = ROLLOUT_ENGINES[rc.engine]
    workers = [
        ray.remote(engine.worker)
        .options(
            max_restarts=rc.max_restarts,
            max_task_retries=0,  # the controller re-issues a lost chunk after giving the new process weights
            runtime_env=env(rc.num_gpus_per_worker),
            num_cpus=rc.num_cpus_per_worker,
            num_gpus=rc.num_gpus_per_worker * share,
            scheduling_strategy=on(b),
        )
        .remote(
            cfg.model.path,
            rc.sampler.generate_kwargs(),
            rc.sampler.eos_penalty,
            cfg.model.dtype,
            None,
            lc.threads or None,
            **engine.extra_kwargs(rc),
        )
        for b in worker_bundle
    ]
    rows = cfg.data.prompts_per_step * rc.n
    learners = [
        ray.remote(LearnerRank)
        .options(
            runtime_env=env(lc.num_gpus_per_rank),
            num_cpus=lc.num_cpus_per_rank,
            num_gpus=lc.num_gpus_per_rank * share,
            scheduling_strategy=on(b),
        )
        .remote(
            r,
            lc.num_ranks,
            cfg.model.path,
            lc.model_dump(),
            cfg.algo.model_dump(),
            rows // lc.num_ranks,
            cfg.trainer.total_steps,
            cfg.trainer.seed,
            rc.sampler.temperature or 1.0,
            cfg.model.kind,
            cfg.trainer.off_policy_overlap,
        )
        for r, b in enumerate(learner_bundle)
    ]
    master = ray.get(learners[0].address.remote())
    ray.get([lr.setup.remote(*master) for lr in learners])
    pings = ray.get([w.ping.remote() for w in workers] + [lr.ping.remote() for lr in learners])
    return Actors(workers, learners, pg, [p["pid"] for p in pings[: len(workers)]])
