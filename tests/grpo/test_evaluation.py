"""Held-out sets and the paired comparison of two evaluations."""

from __future__ import annotations

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.grpo.config import GRPOConfig
from rlvr.grpo.evaluation import compare_evals


def _eval(counts: dict[str, list[int]], n: int = 4) -> dict:
    sets = {}
    for name, cs in counts.items():
        sets[name] = {"pass@1": sum(cs) / (n * len(cs)), "pass@k": {"1": sum(cs) / (n * len(cs))},
                      "tasks": [{"c": c, "n": n, "group": None} for c in cs]}
    return {"sets": sets}


def test_compare_evals_pairs_tasks_and_reports_the_gain_with_its_interval():
    before = _eval({"rl_heldout": [0, 1, 2, 3, 4, 0, 1, 2], "transfer": [4, 4, 4, 4]})
    after = _eval({"rl_heldout": [1, 2, 3, 4, 4, 1, 2, 3], "transfer": [4, 4, 4, 4]})
    out = compare_evals(before, after)
    g = out["rl_heldout"]["gain_pass@1"]
    # per-task gains: 0.25 x 7 and 0 once -> mean 0.21875
    assert g["mean"] == pytest.approx(7 * 0.25 / 8) and g["n"] == 8 and g["low"] <= g["mean"] <= g["high"]
    assert out["rl_heldout"]["before"]["pass@1"] == pytest.approx(13 / 32)
    assert out["rl_heldout"]["after"]["pass@1"] == pytest.approx(20 / 32)
    assert (out["rl_heldout"]["tasks"], out["rl_heldout"]["samples_per_task"]) == (8, 4)
    t = out["transfer"]["gain_pass@1"]
    assert (t["mean"], t["low"], t["high"]) == (0.0, 0.0, 0.0)


def test_heldout_takes_one_file_or_named_sets():
    one = load_config(GRPOConfig, None, ["data.heldout=a.jsonl"])
    assert one.data.eval_sets() == {"heldout": "a.jsonl"}
    many = load_config(GRPOConfig, None, ["data.heldout={rl_heldout: b.jsonl, transfer: c.jsonl}"])
    assert list(many.data.eval_sets().items()) == [("rl_heldout", "b.jsonl"), ("transfer", "c.jsonl")]
    assert load_config(GRPOConfig, None, ["data.heldout=null"]).data.eval_sets() == {}
    with pytest.raises(ConfigError, match="algo.control"):
        load_config(GRPOConfig, None, ["algo.control=bogus"])
    assert load_config(GRPOConfig, None, ["learner.optim.lr=0"]).learner.optim.lr == 0.0


def test_resuming_another_runs_checkpoint_is_refused_naming_the_changed_keys(tmp_path):
    from pathlib import Path

    from rlvr.config import dump_config
    from rlvr.grpo.controller import STATE_FILE, Controller

    out = tmp_path / "run"
    saved = load_config(GRPOConfig, None, [f"trainer.out_dir={out}", "data.train=a.jsonl"])
    dump_config(saved, out / "config.yaml")
    (out / STATE_FILE).write_text("{}")
    c = Controller.__new__(Controller)
    c.out = Path(out)
    # what a resumed run may change: its length, cadence, services
    c.cfg = load_config(GRPOConfig, None, [f"trainer.out_dir={out}", "data.train=a.jsonl", "trainer.total_steps=500",
                                           "reward.sandbox_urls=[http://h:1]"])
    c._check_resumed_config()
    c.cfg = load_config(GRPOConfig, None, [f"trainer.out_dir={out}", "data.train=b.jsonl", "algo.clip_high=0.3"])
    with pytest.raises(ConfigError, match=r"holds a checkpoint of a run with another config \(algo.clip_high: 0.28 -> "
                                          r"0.3; data.train: 'a.jsonl' -> 'b.jsonl'\); .*trainer.resume=false"):
        c._check_resumed_config()
    c.cfg = load_config(GRPOConfig, None, [f"trainer.out_dir={out}", "data.train=b.jsonl", "trainer.resume=false"])
    c._check_resumed_config()  # starting afresh is the user's explicit choice
