"""Supervised fine-tuning of a diffusion LM on chat prompt/response pairs (Dream-Coder instruct stage).

Per sample: ``chat_template(prompt, add_generation_prompt) + response + EOS``; only the response
(and the EOS canvas after it) may be masked and scored. Micro-batches are collated with a cutoff mode
(default ``random_with_input_pad``: prompts left-aligned to one column, the response canvas cut to a
length drawn from the batch). Loss weights default to CART (p = 0.1) with the whole sequence as
context, normalised by the number of masked tokens, exactly as the reference ``run_sft.sh``.
Run: ``rlvr sft -c recipes/configs/tiny/sft.yaml model.path=runs/tiny/pretrain/model``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from rlvr.config import Config
from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.preflight import Problem, local_files, model_folder, tokenizer_source
from rlvr.registry import RegistryName
from rlvr.supervised.config import LoopConfig, ModelSection, ObjectiveSection
from rlvr.supervised.data import CUTOFFS

__all__ = ["SFTConfig", "CONFIG_CLASS", "check", "main", "sample_indices"]

log = logging.getLogger(__name__)


class SFTData(Config):
    files: list[str]  # local jsonl/json/parquet with a chat ``prompt`` and a ``response``
    prompt_field: str = "prompt"  # a messages list (or a plain string = one user turn)
    response_field: str = "response"
    max_length: int = Field(4000, ge=8)  # Dream-Coder drops samples over 4000 tokens (not truncated)
    # the reference's perbatch_cutoff_type
    cutoff: Annotated[
        str, AfterValidator(RegistryName("rlvr.supervised.data:CUTOFFS", "cutoff mode"))
    ] = "random_with_input_pad"


class SFTObjective(ObjectiveSection):
    # defaults: diffusion.time_reweighting=cart, cart_p 0.1 (run_sft.sh / sft_trainer.yaml), sum(w*l)/#masked
    context: Literal["sequence", "response"] = "sequence"  # SFT: the CART sum runs over the whole row
    treat_eos_as_one: bool = False  # reference flag data.treat_eos_as_one, default off


class SFTConfig(Config):
    model: ModelSection
    data: SFTData
    objective: SFTObjective = SFTObjective()
    # sft_trainer.yaml: AdamW betas (0.9, 0.95), wd 0.01, warmup 10%, clip 1.0; lr 5e-6 in run_sft.sh
    optim: OptimConfig = OptimConfig()
    deepspeed: DeepSpeedSection = DeepSpeedSection()
    loop: LoopConfig = LoopConfig(out_dir="runs/sft")


CONFIG_CLASS = SFTConfig


def sample_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Positions ``[start, start+count)`` of an endless stream of per-epoch shuffles of ``range(n)``.

    A pure function of its arguments, so any optimizer step's samples are known without replaying."""
    out: list[int] = []
    cache: dict[int, list[int]] = {}
    for g in range(start, start + count):
        epoch, pos = divmod(g, n)
        if epoch not in cache:
            perm = list(range(n))
            random.Random(f"{seed}:epoch:{epoch}").shuffle(perm)
            cache[epoch] = perm
        out.append(cache[epoch][pos])
    return out


def _micro_batches(
    cfg: SFTConfig, examples, pad_id: int, rank: int, world: int, start_step: int
) -> Iterator[dict]:
    from rlvr.engine.rng import step_seed

    micro, accum, collate = cfg.loop.micro_batch, cfg.loop.grad_accum, CUTOFFS[cfg.data.cutoff]
    step = start_step
    while True:
        for m in range(accum):
            first = ((step * accum + m) * world + rank) * micro
            idx = sample_indices(len(examples), cfg.loop.seed, first, micro)
            rng = random.Random(step_seed(cfg.loop.seed, step, m, rank, 1))
            yield collate([examples[i] for i in idx], pad_id, rng)
        step += 1


def check(cfg: SFTConfig, connect: bool = True) -> list[Problem]:
    """Everything :func:`main` needs that can be checked without starting (see :mod:`rlvr.preflight`)."""
    problems = local_files("data.files", cfg.data.files) + tokenizer_source("model.tokenizer", cfg.model.tokenizer)
    if cfg.model.path is not None:
        problems += model_folder("model.path", cfg.model.path, need_tokenizer=cfg.model.tokenizer is None)
    return problems


def main(cfg: SFTConfig) -> dict:
    from rlvr.diffusion.noise import diffusion_loss, q_sample, weights_for
    from rlvr.engine.engine import Engine
    from rlvr.engine.rng import step_generator
    from rlvr.plots import plot_metrics
    from rlvr.supervised.data import load_sft_examples
    from rlvr.supervised.loop import train_loop
    from rlvr.supervised.modeling import prepare_run

    model, tokenizer, out = prepare_run(cfg)
    examples, dropped = load_sft_examples(
        cfg.data.files, tokenizer, cfg.data.max_length, cfg.data.prompt_field, cfg.data.response_field
    )
    if not examples:
        raise ValueError(
            f"data.files {cfg.data.files}: no example fits data.max_length={cfg.data.max_length}"
        )
    engine = Engine(
        model, cfg.optim, cfg.deepspeed, cfg.loop.steps, cfg.loop.micro_batch, cfg.loop.grad_accum
    )
    mask_id, obj = model.mask_token_id, cfg.objective
    eos_as_one = tokenizer.eos_token_id if obj.treat_eos_as_one else None

    def loss_fn(eng, batch, step, micro):
        ids = batch["input_ids"].to(eng.device)
        attn = batch["attention_mask"].to(eng.device)
        loss_mask = batch["loss_mask"].to(eng.device).bool()
        gen = step_generator(cfg.loop.seed, step, micro, eng.rank)
        noisy, masked, t = q_sample(
            ids, mask_id, loss_mask, t_min=obj.t_min, t_max=obj.t_max, generator=gen, eos_token_id=eos_as_one
        )
        logits = eng(noisy, attention_mask=attn)
        context = None if obj.context == "sequence" else loss_mask
        w = weights_for(obj.weighting, t, masked, obj.cart_p, context)
        return diffusion_loss(logits, ids, masked, w, loss_mask=loss_mask, normalize=obj.normalize)

    summary = train_loop(
        cfg.loop,
        engine,
        lambda start: _micro_batches(
            cfg, examples, tokenizer.pad_token_id, engine.rank, engine.world_size, start
        ),
        loss_fn,
        "sft",
    )
    summary["examples"], summary["dropped_too_long"] = len(examples), dropped
    if engine.rank == 0:
        plot_metrics([("sft", out / "metrics.jsonl")], out / "loss.png", keys=("loss", "ce"))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        log.info("sft done: %s", json.dumps(summary))
    return summary
