"""The shared optimizer-step loop: resume, accumulate, log, checkpoint, save the final HF folder.

A trainer supplies two pure-ish callables:

* ``micro_batches(start_step)`` -> iterator of micro-batches beginning at optimizer step ``start_step``
  (each optimizer step consumes ``grad_accum`` of them); it must be a function of its argument so
  resuming replays the exact batches;
* ``loss_fn(engine, batch, step, micro)`` -> ``(loss, metrics)``; its randomness must be seeded from
  ``(step, micro)`` (see :func:`rlvr.engine.rng.step_generator`) for the same reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from rlvr.engine.engine import Engine, latest_tag
from rlvr.logs import Progress
from rlvr.metrics import MetricsLog
from rlvr.supervised.config import LoopConfig

__all__ = ["train_loop"]

log = logging.getLogger(__name__)


def train_loop(
    loop: LoopConfig,
    engine: Engine,
    micro_batches: Callable[[int], Iterator[Any]],
    loss_fn: Callable[[Engine, Any, int, int], tuple[torch.Tensor, dict[str, float]]],
    name: str,
    final_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run optimizer steps ``[resumed step, loop.steps)``; returns a summary (first/last loss, time)."""
    out = Path(loop.out_dir)
    ckpt_dir = out / "checkpoints"
    start = 0
    if loop.resume and latest_tag(ckpt_dir) is not None:
        start = int(engine.load(ckpt_dir)["step"])
    is_main = engine.rank == 0
    metrics_log = MetricsLog(out / "metrics.jsonl", resume_step=start if start else None, enabled=is_main)
    batches = micro_batches(start)
    engine.train()
    first_loss = last_loss = None
    t0 = time.time()
    with Progress(loop.steps, name, start, enabled=loop.progress and is_main, logger=log) as bar:
        for step in range(start, loop.steps):
            sums: dict[str, float] = {}
            for micro in range(loop.grad_accum):
                batch = next(batches)
                loss, metrics = loss_fn(engine, batch, step, micro)
                engine.backward(loss)
                engine.step()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
            row = {k: v / loop.grad_accum for k, v in sums.items()}
            row["lr"] = engine.lr
            gn = engine.grad_norm()
            if gn is not None:
                row["grad_norm"] = gn
            done = step + 1
            first_loss = row.get("loss") if first_loss is None else first_loss
            last_loss = row.get("loss")
            if done % loop.log_every == 0 or done == loop.steps:
                metrics_log.log(done, **row)
            bar.update(done, loss=row.get("loss", float("nan")), lr=row["lr"])
            if loop.save_every and done % loop.save_every == 0 and done < loop.steps:
                engine.save(ckpt_dir, {"step": done}, keep=loop.keep_checkpoints)
    if start < loop.steps:
        engine.save(ckpt_dir, {"step": loop.steps}, keep=loop.keep_checkpoints)
    final = Path(final_dir) if final_dir is not None else out / "model"
    engine.save_hf(final)
    return {
        "start_step": start,
        "steps": loop.steps,
        "first_loss": first_loss,
        "last_loss": last_loss,
        "seconds": round(time.time() - t0, 2),
        "model_dir": str(final),
    }
