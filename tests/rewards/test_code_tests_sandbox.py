"""code_tests against the real sandbox service (Docker)."""

from __future__ import annotations

import pytest
from rlvr.rewards import Sample, score_sync

from rlvr import rewards
from tests.rewards.helpers import ADD_OK, ADD_TESTS, code_row, fenced

pytestmark = pytest.mark.docker

ROW = code_row(ADD_TESTS)


def test_verdicts_and_modes(sandbox_url):
    completions = [
        fenced(ADD_OK),
        "the answer is a + b",
        fenced("def add(a, b):\n    return a * b\n"),  # right only for add(2, 2)
        fenced("def add(a, b):\n    while True:\n        pass\n"),
        fenced("def add(a, b):\n    return a +\n"),
        fenced("import sys\nsys.exit(0)\n"),  # exiting early must not count as passing
    ]
    batch = [Sample(ROW, c) for c in completions]
    binary = score_sync(rewards.get("code_tests", urls=[sandbox_url], time_limit_s=1.0), batch, deadline_s=120)
    assert [r.reward for r in binary] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [r.reason for r in binary] == [None, "no_code", "wrong_answer", "timeout", "runtime_error",
                                          "runtime_error"]
    rate = score_sync(rewards.get("code_tests", urls=[sandbox_url], mode="pass_rate", time_limit_s=1.0),
                      batch[:3], deadline_s=120)
    assert [r.reward for r in rate] == [1.0, 0.0, pytest.approx(1 / 3)]
    assert rate[2].info["tests"] == ["wrong_answer", "wrong_answer", "accepted"]


def test_one_megabyte_completion(sandbox_url):
    pad = "# " + "x" * 98 + "\n"
    code = pad * 10_000 + ADD_OK  # about 1 MB of program
    completion = "Some thoughts.\n" + fenced(code)
    assert len(completion) > 1_000_000
    out = score_sync(rewards.get("code_tests", urls=[sandbox_url]), [Sample(ROW, completion)], deadline_s=120)
    assert (out[0].reward, out[0].reason, out[0].info["status"]) == (1.0, None, "accepted")
