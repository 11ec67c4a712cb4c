"""End to end on the tiny world: make data, pretrain, SFT (real DeepSpeed engine), evaluate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlvr.metrics import read_metrics

TINY = [
    "model.init.hidden_size=64",
    "model.init.num_hidden_layers=2",
    "model.init.intermediate_size=128",
    "loop.micro_batch=8",
    "loop.log_every=1",
    "loop.progress=false",
]


def _ce(path, first: bool, k: int = 5) -> float:
    rows = read_metrics(path)
    rows = rows[:k] if first else rows[-k:]
    return sum(r["ce"] for r in rows) / len(rows)


@pytest.mark.slow
def test_pretrain_then_sft_loss_falls_and_model_evaluates(tmp_path):
    from rlvr.cli import app

    runner = CliRunner()
    d = tmp_path / "data"
    res = runner.invoke(
        app, ["world", "make-data", str(d), "--n-train", "300", "--n-heldout", "6", "--vocab-size", "400"]
    )
    assert res.exit_code == 0, res.output

    res = runner.invoke(
        app,
        [
            "pretrain",
            "-c",
            "recipes/configs/tiny/pretrain.yaml",
            *TINY,
            f"model.tokenizer={d}/tokenizer",
            f"data.files=[{d}/corpus/train.jsonl]",
            "data.block_size=64",
            "loop.steps=30",
            "loop.save_every=15",
            f"loop.out_dir={tmp_path}/pt",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        _ce(tmp_path / "pt" / "metrics.jsonl", first=False)
        < _ce(tmp_path / "pt" / "metrics.jsonl", first=True) - 0.5
    )
    assert (tmp_path / "pt" / "loss.png").stat().st_size > 1000

    res = runner.invoke(
        app,
        [
            "sft",
            "-c",
            "recipes/configs/tiny/sft.yaml",
            *TINY[3:],
            f"model.path={tmp_path}/pt/model",
            f"data.files=[{d}/sft/train.jsonl]",
            "loop.steps=30",
            "loop.save_every=0",
            f"loop.out_dir={tmp_path}/sft",
        ],
    )
    assert res.exit_code == 0, res.output
    sft_metrics = tmp_path / "sft" / "metrics.jsonl"
    assert _ce(sft_metrics, first=False) < _ce(sft_metrics, first=True) - 0.5
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert (summary["examples"], summary["dropped_too_long"], summary["steps"]) == (300, 0, 30)

    res = runner.invoke(
        app,
        [
            "world",
            "eval",
            "--model",
            f"{tmp_path}/sft/model",
            "--data",
            f"{d}/rl/heldout.jsonl",
            "--max-new-tokens",
            "24",
            "--out",
            f"{tmp_path}/eval.json",
        ],
    )
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["n"] == 6 and sum(ev["statuses"].values()) == 6 and 0.0 <= ev["pass@1"] <= 1.0
    assert "held-out pass@1" in res.output
