"""A compact DeepSpeed engine wrapper shared by pretraining, SFT and the GRPO learner.

``Engine`` owns: process-group setup (a 1-process gloo group when launched as a plain script), the
torch AdamW optimizer and LR schedule (a torch optimizer avoids DeepSpeed's JIT-compiled fused Adam),
the DeepSpeed config for ZeRO stage 0-3, ``backward``/``step`` with gradient accumulation, and
checkpoints that also hold every RNG state and the caller's data cursor, so a resumed run continues
bit-exactly where it stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.engine.rng import rng_state, set_rng_state

__all__ = [
    "Engine",
    "init_distributed",
    "build_ds_config",
    "lr_schedule",
    "latest_tag",
    "free_port",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> None:
    """Join (or create) the process group. A plain ``python`` run becomes rank 0 of a 1-process group.

    torchrun / the deepspeed launcher / Ray actors set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; we
    only fill in what is missing. gloo on CPU (no oneCCL needed), nccl on GPUs.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo", verbose=False)


def build_ds_config(
    ds: DeepSpeedSection, micro_batch: int, grad_accum: int, grad_clip: float, world_size: int = 1
) -> dict[str, Any]:
    """The DeepSpeed JSON config for our loop (the optimizer is passed as a torch object, not here)."""
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if ds.zero_stage == 3:
        # gather full weights for saving an HF folder; overlap comm when a GPU is there
        zero.update(
            {"stage3_gather_16bit_weights_on_model_save": True, "overlap_comm": torch.cuda.is_available()}
        )
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch * grad_accum * world_size,
        "gradient_clipping": grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.bf16},
        "steps_per_print": 10**9,  # we print our own metrics
        "wall_clock_breakdown": False,
    }
    for key, value in ds.extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def lr_schedule(optimizer: Any, optim: OptimConfig, total_steps: int) -> Any:
    """The LR schedule of ``optim`` over ``total_steps`` optimizer steps, from ``transformers``: linear
    warmup over ``warmup_ratio`` of the steps, then constant, or a cosine / linear decay to
    ``min_lr_ratio * lr`` (transformers' warmup-stable-decay schedule with no stable phase; its warmup
    starts at ``min_lr_ratio * lr``)."""
    from transformers import get_scheduler

    warmup = int(round(optim.warmup_ratio * total_steps))
    if optim.schedule == "constant":
        return get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup)
    return get_scheduler(
        "warmup_stable_decay",
        optimizer,
        num_warmup_steps=warmup,
        scheduler_specific_kwargs={
            "num_stable_steps": 0,
            "num_decay_steps": max(1, total_steps - warmup),
            "decay_type": optim.schedule,
            "min_lr_ratio": optim.min_lr_ratio,
        },
    )


def latest_tag(ckpt_dir: str | Path) -> str | None:
    """The tag DeepSpeed recorded as latest in ``ckpt_dir``, or None when there is no checkpoint."""
    f = Path(ckpt_dir) / "latest"
    return f.read_text().strip() if f.is_file() else None


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm gains (1-D tensors), the usual LM practice."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Engine:
    """DeepSpeed-wrapped model + AdamW + LR schedule with checkpoint/resume.

    Usage per optimizer step: for each of ``grad_accum`` micro-batches ``loss = f(engine(...));
    engine.backward(loss); engine.step()``; DeepSpeed applies the update at the accumulation boundary.
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        ds: DeepSpeedSection,
        total_steps: int,
        micro_batch: int,
        grad_accum: int = 1,
    ):
        import deepspeed

        init_distributed()
        import torch.distributed as dist

        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.ds_config = build_ds_config(ds, micro_batch, grad_accum, optim.grad_clip, self.world_size)
        if ds.gradient_checkpointing and hasattr(
            getattr(model, "model", model), "gradient_checkpointing_enable"
        ):
            getattr(model, "model", model).gradient_checkpointing_enable()
        opt = torch.optim.AdamW(
            _param_groups(model, optim.weight_decay), lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps
        )
        # A callable: DeepSpeed builds the schedule on ITS optimizer, whose param groups can differ
        # from ours (ZeRO-3 drops groups that are empty on a rank).
        def sched(ds_opt: Any) -> Any:
            return lr_schedule(ds_opt, optim, total_steps)

        self.ds, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=opt, lr_scheduler=sched, config=self.ds_config
        )
        self.zero_stage = ds.zero_stage

    # ------------------------------------------------------------------ training
    @property
    def module(self) -> nn.Module:
        return self.ds.module

    @property
    def device(self) -> torch.device:
        return self.ds.device

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far (restored by :meth:`load`)."""
        return int(self.ds.global_steps)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.ds(*args, **kwargs)

    def train(self, mode: bool = True) -> None:
        self.ds.train(mode)

    def backward(self, loss: torch.Tensor) -> None:
        self.ds.backward(loss)

    def step(self) -> None:
        self.ds.step()

    def grad_norm(self) -> float | None:
        norm = self.ds.get_global_grad_norm()
        return None if norm is None else float(norm)

    # ------------------------------------------------------------------ checkpoints
    def save(self, ckpt_dir: str | Path, client_state: dict[str, Any] | None = None, keep: int = 2) -> str:
        """Save model, optimizer, scheduler, RNG states and ``client_state`` (e.g. the data cursor).

        Returns the tag. Older checkpoints beyond ``keep`` are removed (rank 0).
        """
        tag = f"step_{self.global_step:08d}"
        state = {"rng": rng_state(), "client": dict(client_state or {})}
        self.ds.save_checkpoint(str(ckpt_dir), tag=tag, client_state=state)
        if self.rank == 0:
            old = sorted(p for p in Path(ckpt_dir).glob("step_*") if p.is_dir())
            for p in old[:-keep]:
                shutil.rmtree(p, ignore_errors=True)
        return tag

    def load(self, ckpt_dir: str | Path, tag: str | None = None) -> dict[str, Any]:
        """Restore a checkpoint written by :meth:`save`; returns its ``client_state``."""
        tag = tag or latest_tag(ckpt_dir)
        if tag is None:
            raise FileNotFoundError(f"no checkpoint in {str(ckpt_dir)!r} (missing 'latest')")
        path, state = self.ds.load_checkpoint(str(ckpt_dir), tag=tag)
        if path is None:
            raise FileNotFoundError(f"checkpoint {tag!r} in {str(ckpt_dir)!r} could not be loaded")
        set_rng_state(state["rng"])
        return state["client"]

    def save_hf(self, out_dir: str | Path) -> None:
        """Write the wrapped model as an ordinary HF folder (``module.save_pretrained``), gathering
        ZeRO-3 shards first. Only rank 0 writes."""
        import deepspeed

        module = self.module
        if self.zero_stage == 3:
            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                if self.rank == 0:
                    module.save_pretrained(out_dir)
        elif self.rank == 0:
            module.save_pretrained(out_dir)
        import torch.distributed as dist

        if self.world_size > 1:
            dist.barrier()
