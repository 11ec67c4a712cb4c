"""Engine (DeepSpeed, 1-process gloo group on CPU): schedule, config, and bit-exact resume."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rlvr.diffusion import DiffusionLM
from rlvr.diffusion.noise import diffusion_loss, q_sample, weights_for
from rlvr.engine.config import DeepSpeedSection, OptimConfig
from rlvr.engine.engine import Engine, build_ds_config, lr_schedule
from rlvr.engine.rng import step_generator
from rlvr.supervised.config import LoopConfig
from rlvr.supervised.loop import train_loop
from tests.conftest import make_tiny_qwen


def _lrs(schedule: str, total: int, warmup_ratio: float, min_lr_ratio: float = 0.0) -> list[float]:
    """The lr of every optimizer step 0..total under ``lr_schedule`` (base lr 1)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = lr_schedule(opt, OptimConfig(lr=1.0, warmup_ratio=warmup_ratio, schedule=schedule,
                                         min_lr_ratio=min_lr_ratio), total)
    out = []
    for _ in range(total + 1):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_lr_schedule_is_transformers_warmup_then_decay():
    # 10 steps, 2 of linear warmup from 0, then flat / linear / cosine down to the floor
    assert _lrs("constant", 10, 0.2) == pytest.approx([0.0, 0.5] + [1.0] * 9)
    assert _lrs("linear", 10, 0.2) == pytest.approx([0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0])
    cos = _lrs("cosine", 10, 0.2)
    assert cos[2] == pytest.approx(1.0) and cos[6] == pytest.approx(0.5) and cos[10] == pytest.approx(0.0)
    # a floor of 10%: warmup starts there (transformers' warmup-stable-decay) and the decay ends there
    floored = _lrs("cosine", 10, 0.2, min_lr_ratio=0.1)
    assert floored[0] == pytest.approx(0.1) and floored[6] == pytest.approx(0.55) and floored[10] == pytest.approx(0.1)
    assert _lrs("constant", 4, 0.0) == pytest.approx([1.0] * 5)  # the GRPO learner: constant, no warmup


def test_build_ds_config():
    cfg = build_ds_config(
        DeepSpeedSection(zero_stage=3, extra={"zero_optimization": {"reduce_bucket_size": 7}}),
        micro_batch=2,
        grad_accum=3,
        grad_clip=1.0,
        world_size=4,
    )
    assert cfg["train_batch_size"] == 24 and cfg["gradient_accumulation_steps"] == 3
    assert cfg["zero_optimization"]["stage"] == 3 and cfg["zero_optimization"]["reduce_bucket_size"] == 7
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert cfg["gradient_clipping"] == 1.0 and cfg["bf16"] == {"enabled": False}


def _run(out_dir, steps, zero_stage=0, progress=False):
    """A few SFT-like steps of a tiny DLM; uses both a per-step generator and the global torch RNG."""
    torch.manual_seed(0)
    model = DiffusionLM.from_pretrained(make_tiny_qwen(), mask_token_id=63)
    loop = LoopConfig(out_dir=str(out_dir), steps=steps, micro_batch=2, grad_accum=2, progress=progress)
    engine = Engine(
        model,
        OptimConfig(lr=1e-2, warmup_ratio=0.25),
        DeepSpeedSection(zero_stage=zero_stage),
        total_steps=4,
        micro_batch=2,
        grad_accum=2,
    )

    def batches(start):
        step = start
        while True:
            for m in range(2):
                g = torch.Generator().manual_seed(step * 10 + m)
                yield torch.randint(2, 60, (2, 12), generator=g)
            step += 1

    def loss_fn(eng, ids, step, micro):
        noisy, masked, t = q_sample(ids, 63, None, generator=step_generator(0, step, micro))
        noise = torch.rand(())  # global RNG: must be restored from the checkpoint to match
        loss, m = diffusion_loss(eng(noisy), ids, masked, weights_for("linear", t, masked))
        return loss * (1 + 0.01 * noise), m

    return train_loop(loop, engine, batches, loss_fn, "t"), engine


def _losses(out_dir):
    return {
        r["step"]: r["loss"] for r in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines())
    }


def test_progress_off_a_terminal_logs_lines_and_the_metrics_file_still_fills(tmp_path, caplog):
    # the loop once passed its MetricsLog where Progress wanted a logger: every pretrain/SFT run off a
    # terminal (scripts/main.sh > log) died at its first progress line
    with caplog.at_level(logging.INFO, logger="rlvr.supervised.loop"):
        summary, _ = _run(tmp_path / "run", 3, progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "rlvr.supervised.loop"]
    assert [line.split(",")[0] for line in lines] == ["t step 1/3 (33.3%)", "t step 3/3 (100.0%)"]
    assert summary["steps"] == 3
    assert sorted(_losses(tmp_path / "run")) == [1, 2, 3]


@pytest.mark.parametrize("zero_stage", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_continues_bit_exactly(tmp_path, zero_stage):
    full, _ = _run(tmp_path / "full", 4, zero_stage)
    _run(tmp_path / "part", 2, zero_stage)  # stops after step 2 and checkpoints
    resumed, _ = _run(tmp_path / "part", 4, zero_stage)  # a fresh process-like start: new model, new engine
    assert resumed["start_step"] == 2
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert sorted(b) == [1, 2, 3, 4]  # one trajectory in the metrics file
    assert a == b  # bit-exact: steps 3 and 4 equal the uninterrupted run
    assert a[4] < a[1]
    sd_full = DiffusionLM.from_pretrained(tmp_path / "full" / "model", mask_token_id=63).state_dict()
    sd_part = DiffusionLM.from_pretrained(tmp_path / "part" / "model", mask_token_id=63).state_dict()
    assert all(torch.equal(sd_full[k], sd_part[k]) for k in sd_full)


def test_engine_checkpoint_keeps_rng_and_client_state(tmp_path):
    _, engine = _run(tmp_path / "r", 1)
    torch.manual_seed(123)
    engine.save(tmp_path / "ck", {"step": 1, "cursor": 17})
    expected = torch.rand(3)
    torch.manual_seed(999)
    assert engine.load(tmp_path / "ck") == {"step": 1, "cursor": 17}
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(FileNotFoundError, match="latest"):
        engine.load(tmp_path / "empty")
