"""The eval harness on all of HumanEval with the canonical solutions, through the real sandbox."""

from __future__ import annotations

import json

import pytest

from rlvr.config import load_config
from rlvr.eval.harness import EvalConfig, run_eval

pytestmark = pytest.mark.docker


def test_humaneval_canonical_164_of_164(tmp_path, sandbox_url):
    cfg = load_config(EvalConfig, None, ["dataset=humaneval", "model.kind=reference", f"sandbox_urls=[{sandbox_url}]",
                                         "batch_size=164", f"out_dir={tmp_path}", "save_completions=false"])
    summary = run_eval(cfg)
    assert (summary["problems"], summary["pass@1"], summary["outcomes"]) == (164, 1.0, {"passed": 164})
    recs = [json.loads(x) for x in (tmp_path / "problems.jsonl").read_text().splitlines()]
    assert len(recs) == 164 and recs[0]["id"] == "HumanEval/0"
    assert all(r["c"] == 1 for r in recs)
