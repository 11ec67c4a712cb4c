"""LearnerRank: one DeepSpeed data-parallel rank. The controller starts ``learner.num_ranks`` of them as
Ray actors (gloo on CPU, NCCL on GPU); every collective method must be called on all ranks together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rlvr.batch import TrainBatch

__all__ = ["LearnerRank"]


class LearnerRank:
    def __init__(
        self,
        rank: int,
        world_size: int,
        model_path: str,
        learner: dict[str, Any],
        algo: dict[str, Any],
        rows_per_rank: int,
        total_steps: int,
        seed: int = 0,
        temperature: float = 1.0,
        model_kind: str = "diffusion",
        overlap: bool = False,
    ):
        """Cheap: records the arguments. :meth:`setup` (called on all ranks together, once rank 0's
        :meth:`address` is known) joins the process group and builds the DeepSpeed engine."""
        from rlvr.grpo.config import AlgoCfg, LearnerCfg

        self.cfg = LearnerCfg.model_validate(learner)
        self.algo = AlgoCfg.model_validate(algo)
        self.rank, self.world_size, self.seed, self.temperature = rank, world_size, seed, temperature
        self.model_path, self.rows_per_rank, self.total_steps = model_path, rows_per_rank, total_steps
        self.model_kind = model_kind  # ModelCfg.kind: which policy class loads the checkpoint
        self.overlap = overlap  # trainer.off_policy_overlap: keep the behaviour policy (decoupled PPO)
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)

    def address(self) -> tuple[str, int]:
        """This node's IP and a free port: rank 0 hosts the process group's rendezvous."""
        from rlvr.engine.engine import free_port

        try:
            import ray

            ip = ray.util.get_node_ip_address()
        except Exception:  # outside Ray (unit tests)
            ip = "127.0.0.1"
        return ip, free_port()

    def setup(self, master_addr: str, master_port: int) -> None:
        os.environ.update(
            RANK=str(self.rank),
            LOCAL_RANK="0",
            WORLD_SIZE=str(self.world_size),
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
        )
        from rlvr.engine.engine import Engine, build_ds_config, init_distributed
        from rlvr.learner.ppo import micro_layout

        init_distributed()  # before any ZeRO-3 partitioned load, which reads the world size
        k = self.algo.estimator().num_copies
        _, n_micro = micro_layout(self.rows_per_rank, self.algo.mini_batches, self.cfg.micro_batch_size, k)
        ds, world_size, model_path, total_steps = (
            self.cfg.deepspeed,
            self.world_size,
            self.model_path,
            self.total_steps,
        )
        keep_alive = None
        ds_config = build_ds_config(ds, self.cfg.micro_batch_size, n_micro, self.cfg.optim.grad_clip, world_size)
        if ds.zero_stage == 3:  # load HF weights already partitioned
            from transformers.integrations import HfDeepSpeedConfig

            keep_alive = HfDeepSpeedConfig(ds_config)
        dtype = torch.bfloat16 if ds.bf16 else torch.float32
        self.policy = _policy_class(self.model_kind).from_pretrained(model_path, torch_dtype=dtype)
        self.policy.model.train()
        self.ref = None
        if self.algo.kl_coef > 0:  # the starting checkpoint, loaded again (partitioned under ZeRO-3)
            from rlvr.learner.reference import load_reference

            self.ref = load_reference(_policy_class(self.model_kind), model_path, dtype, ds_config)
        # off-policy overlap: the weights that generated the next batch (the version before this rank's
        # last update), partitioned like the policy; holds the starting checkpoint (version 0) at first
        self.behaviour, self.behaviour_version = None, 0
        if self.overlap:
            from rlvr.learner.reference import load_reference

            self.behaviour = load_reference(_policy_class(self.model_kind), model_path, dtype, ds_config)
        self.engine = Engine(
            self.policy.model,
            self.cfg.optim,
            ds,
            total_steps=total_steps * self.algo.ppo_epochs * self.algo.mini_batches,
            micro_batch=self.cfg.micro_batch_size,
            grad_accum=n_micro,
        )
        self._keep_alive = keep_alive
        self.policy.model = self.engine.module  # the DeepSpeed-managed module (identical object)

    def ping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rank": self.rank, "pid": os.getpid(), "world_size": self.world_size}
        for attr, key in (("ref", "reference"), ("behaviour", "behaviour")):  # second copies: sharded or whole?
            copy = getattr(self, attr, None)
            if copy is not None:
                params = list(copy.model.parameters())
                out[key] = {
                    "partitioned": all(hasattr(p, "ds_id") for p in params),
                    "local_numel": sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params),
                    "numel": sum(int(getattr(p, "ds_numel", p.numel())) for p in params),
                }
        return out

    # ------------------------------------------------------------------ training
    def train_step(self, batch: TrainBatch, step: int, policy_version: int | None = None) -> dict[str, float]:
        """All PPO epochs of RL step ``step`` on this rank's shard. ``policy_version``: the updates the
        current weights contain; with overlap, a batch generated one version earlier (``batch.version``)
        is trained with the decoupled objective against the behaviour snapshot."""
        from rlvr.engine.rng import step_generator
        from rlvr.learner.ppo import ppo_update

        self.engine.train()
        gen = step_generator(self.seed, step, self.rank)
        ref_forward = None if self.ref is None else self.ref.forward
        behaviour_forward, before_update = None, None
        if self.behaviour is not None and policy_version is not None:
            lag = policy_version - batch.version
            if lag not in (0, 1):
                raise ValueError(f"batch generated by version {batch.version}, policy at {policy_version}: "
                                 "one-step overlap allows a lag of 0 or 1")
            if lag == 1:
                if self.behaviour_version != batch.version:
                    raise RuntimeError(f"the behaviour copy holds version {self.behaviour_version}, the batch "
                                       f"was generated by version {batch.version}")
                behaviour_forward = self.behaviour.forward

            def before_update(v: int = policy_version) -> None:  # the next batch's behaviour policy
                from rlvr.learner.reference import copy_weights

                copy_weights(self.engine.module, self.behaviour.model)
                self.behaviour_version = v

        self.last_record: dict[str, Any] = {}
        metrics = ppo_update(
            self.engine,
            self.policy.forward,
            batch,
            self.algo,
            self.policy.mask_token_id,
            gen,
            self.cfg.micro_batch_size,
            temperature=self.temperature,
            ref_forward=ref_forward,
            behaviour_forward=behaviour_forward,
            before_update=before_update,
            record=self.last_record,
        )
        metrics["actor/lr"] = self.engine.lr
        metrics["actor/behaviour_lag"] = 0.0 if behaviour_forward is None else 1.0
        return metrics

    # ------------------------------------------------------------------ weights and checkpoints
    def gather_weights(self) -> dict[str, torch.Tensor] | None:
        """Full weights on rank 0, None elsewhere (collective under ZeRO-3): see :mod:`rlvr.grpo.weight_sync`."""
        from rlvr.grpo.weight_sync import gather_full_weights

        return gather_full_weights(self.engine.module, self.cfg.deepspeed.zero_stage, self.rank)

    def weight_manifest(self) -> list[tuple[str, tuple[int, ...], str]]:
        from rlvr.grpo.weight_sync import weight_manifest

        return weight_manifest(self.engine.module)

    def device_id(self) -> str | None:
        from rlvr.grpo.weight_sync import device_id

        return device_id(self.engine.device)

    def open_weight_groups(self, addr: str, port: int, pairs: dict[int, tuple[str, str]]) -> None:
        """Rank 0: open a pair group with each rollout worker in ``pairs`` (index -> (prefix, backend))."""
        from rlvr.grpo.weight_sync import open_pair_group

        groups = getattr(self, "_weight_groups", {})
        for i, (prefix, backend) in pairs.items():
            groups[i] = open_pair_group(addr, port, 0, prefix, backend)
        self._weight_groups = groups

    def stream_weights(self, workers: list[int], bucket_bytes: int) -> dict[str, float]:
        """Stream the weights bucket by bucket to ``workers`` (rank 0 sends; collective under ZeRO-3)."""
        from rlvr.grpo.weight_sync import stream_full_weights

        groups = [self._weight_groups[i] for i in workers] if self.rank == 0 else []
        return stream_full_weights(self.engine.module, self.cfg.deepspeed.zero_stage, self.rank, groups, bucket_bytes)

    def save(self, ckpt_dir: str, client_state: dict[str, Any]) -> str:
        return self.engine.save(ckpt_dir, client_state=client_state)

    def load(self, ckpt_dir: str) -> dict[str, Any]:
        return self.engine.load(ckpt_dir)

    def save_hf(self, out_dir: str, tokenizer_from: str | None = None) -> None:
        self.engine.save_hf(out_dir)
        if self.rank == 0 and tokenizer_from and (Path(tokenizer_from) / "tokenizer_config.json").is_file():
            from rlvr.diffusion.checkpoints import load_tokenizer

            load_tokenizer(tokenizer_from).save_pretrained(out_dir)


# model.kind -> the policy wrapper whose ``forward`` gives aligned logits ("module:class", imported on use)
POLICY_KINDS: dict[str, str] = {
    "diffusion": "rlvr.diffusion.model:DiffusionLM",
    "autoregressive": "rlvr.learner.ar_policy:ARPolicy",
}


def _policy_class(kind: str) -> type:
    import importlib

    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; choose one of {sorted(POLICY_KINDS)}")
    module, _, name = POLICY_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
