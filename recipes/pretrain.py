"""AR-to-diffusion adaptation / continued pretraining (Dream-Coder base stage).

A causal LM (``model.path``) or a fresh tiny Qwen2 (``model.init``) is trained as a masked diffusion
LM on packed blocks of a local text/code corpus streamed with ``datasets``:

    x_t = q_sample(block, t ~ U(t_min, t_max));  loss = sum_i w_i * CE(x0_i | x_t) / #masked

with ``w`` = ``1/t`` by default (the continuous-time ELBO weight; Dream's ``original``) and the others
(``linear``, ``cart``, ``none``) a config choice. Run: ``rlvr pretrain -c recipes/configs/tiny/pretrain.yaml``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import torch
from pydantic import Field

from rlvr.config import Config
from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.preflight import Problem, local_files, model_folder, tokenizer_source
from rlvr.supervised.config import LoopConfig, ModelSection, ObjectiveSection, Weighting

__all__ = ["PretrainConfig", "CONFIG_CLASS", "check", "main"]

log = logging.getLogger(__name__)


class PretrainData(Config):
    files: list[str]  # local jsonl/json/parquet/txt files (one format per run)
    text_field: str = "text"
    block_size: int = Field(2048, ge=8)  # packed sequence length; Dream-Coder trains at 2k-4k context
    shuffle_buffer: int = Field(10_000, ge=0)  # streaming shuffle buffer (0/1 = file order)


class PretrainObjective(ObjectiveSection):
    weighting: Weighting = "inverse_t"  # continuous-time weighted CE (w = 1/t): the pretraining ELBO
    # a small floor keeps 1/t finite in expectation without changing the objective much
    t_min: float = Field(1e-3, ge=0, le=1)


class PretrainConfig(Config):
    model: ModelSection
    data: PretrainData
    objective: PretrainObjective = PretrainObjective()
    # Adaptation of a 7B AR model: small lr, short warmup, cosine decay (paper: continued pretraining)
    optim: OptimConfig = OptimConfig(lr=2e-5, warmup_ratio=0.01, weight_decay=0.1)
    deepspeed: DeepSpeedSection = DeepSpeedSection()
    loop: LoopConfig = LoopConfig(out_dir="runs/pretrain")


CONFIG_CLASS = PretrainConfig


def _micro_batches(
    cfg: PretrainConfig, tokenizer, rank: int, world: int, start_step: int
) -> Iterator[torch.Tensor]:
    from rlvr.supervised.data import pretrain_blocks

    per_step = cfg.loop.micro_batch * cfg.loop.grad_accum * world
    blocks = pretrain_blocks(
        cfg.data.files,
        tokenizer,
        cfg.data.block_size,
        cfg.data.text_field,
        seed=cfg.loop.seed,
        shuffle_buffer=cfg.data.shuffle_buffer,
        skip=start_step * per_step,  # the data cursor: blocks consumed by all ranks before this step
    )
    while True:
        # every rank reads the same stream and keeps its own slice of each micro-batch group
        group = [next(blocks) for _ in range(cfg.loop.micro_batch * world)]
        mine = group[rank * cfg.loop.micro_batch : (rank + 1) * cfg.loop.micro_batch]
        yield torch.tensor(mine, dtype=torch.long)


def check(cfg: PretrainConfig, connect: bool = True) -> list[Problem]:
    """Everything :func:`main` needs that can be checked without starting (see :mod:`rlvr.preflight`)."""
    problems = local_files("data.files", cfg.data.files) + tokenizer_source("model.tokenizer", cfg.model.tokenizer)
    if cfg.model.path is not None:
        problems += model_folder("model.path", cfg.model.path)
    return problems


def main(cfg: PretrainConfig) -> dict:
    from rlvr.diffusion.noise import diffusion_loss, q_sample, weights_for
    from rlvr.engine.engine import Engine
    from rlvr.engine.rng import step_generator
    from rlvr.plots import plot_metrics
    from rlvr.supervised.loop import train_loop
    from rlvr.supervised.modeling import prepare_run

    model, tokenizer, out = prepare_run(cfg)
    engine = Engine(
        model, cfg.optim, cfg.deepspeed, cfg.loop.steps, cfg.loop.micro_batch, cfg.loop.grad_accum
    )
    mask_id, obj = model.mask_token_id, cfg.objective

    def loss_fn(eng, ids, step, micro):
        ids = ids.to(eng.device)
        gen = step_generator(cfg.loop.seed, step, micro, eng.rank)
        noisy, masked, t = q_sample(ids, mask_id, None, t_min=obj.t_min, t_max=obj.t_max, generator=gen)
        logits = eng(noisy)
        w = weights_for(obj.weighting, t, masked, obj.cart_p)
        return diffusion_loss(logits, ids, masked, w, normalize=obj.normalize)

    summary = train_loop(
        cfg.loop,
        engine,
        lambda start: _micro_batches(cfg, tokenizer, engine.rank, engine.world_size, start),
        loss_fn,
        "pretrain",
    )
    if engine.rank == 0:
        plot_metrics([("pretrain", out / "metrics.jsonl")], out / "loss.png", keys=("loss", "ce"))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        log.info("pretrain done: %s", json.dumps(summary))
    return summary
