"""The verifier protocol and runner: wrapping, failure isolation, deadlines, overlong policy, registry."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from rlvr.rewards import OverlongPolicy, RewardResult, Sample, score_sync
from rlvr.rewards.registry import UnknownVerifierError

from rlvr import rewards
from tests.rewards.helpers import ADD_OK, ADD_TESTS, FakeClient, code_row, fenced, response

ROW = code_row(ADD_TESTS)


def samples(*completions: str, **kw) -> list[Sample]:
    return [Sample(ROW, c, **kw) for c in completions]


def test_trl_style_function_gets_columns_and_is_wrapped():
    seen = {}

    def contains_add(completions, data_source, truncated):
        seen.update(data_source=data_source, truncated=truncated)
        return [1.0 if "add" in c else 0.0 for c in completions]

    out = score_sync(contains_add, samples("def add", "nothing"))
    assert [r.reward for r in out] == [1.0, 0.0]
    assert [r.reason for r in out] == [None, None]
    assert seen == {"data_source": ["unit", "unit"], "truncated": [False, False]}


def test_function_with_kwargs_none_and_verl_dict():
    async def fn(completions, **kwargs):
        assert set(kwargs) >= {"prompt", "reward_model", "extra_info", "truncated"}
        return [None, {"score": 0.5, "detail": "half"}]

    out = score_sync(fn, samples("a", "b"))
    assert (out[0].reward, out[0].reason) == (0.0, "not_applicable")
    assert (out[1].reward, out[1].info["detail"]) == (0.5, "half")


class Raises:
    """Fails on any batch that contains the completion 'boom'."""

    name = "raises"

    async def verify(self, batch):
        if any(s.completion == "boom" for s in batch):
            raise RuntimeError("verifier bug")
        return [RewardResult(1.0, {"reason": None}) for _ in batch]


def test_verifier_that_raises_costs_only_that_sample(caplog):
    out = score_sync(Raises(), samples("ok", "boom", "fine"), deadline_s=5)
    assert [r.reward for r in out] == [1.0, 0.0, 1.0]
    assert [r.reason for r in out] == [None, "verifier_error", None]
    assert out[1].info["error"] == "RuntimeError: verifier bug"
    assert "verifier raises failed on sample 1" in caplog.text


class Hangs:
    name = "hangs"

    async def verify(self, batch):
        if any(s.completion == "hang" for s in batch):
            await asyncio.sleep(3600)
        return [RewardResult(0.25, {"reason": None}) for _ in batch]


@pytest.mark.timeout(30)
def test_verifier_that_hangs_costs_only_that_sample():
    out = score_sync(Hangs(), samples("a", "hang", "b"), deadline_s=0.5)
    assert [r.reward for r in out] == [0.25, 0.0, 0.25]
    assert [r.reason for r in out] == [None, "verifier_timeout", None]


@pytest.mark.timeout(30)
def test_sync_function_that_hangs_is_abandoned():
    def slow(completions):
        if "hang" in completions:
            time.sleep(3600)  # a daemon thread: it cannot block interpreter exit
        return [1.0] * len(completions)

    out = score_sync(slow, samples("a", "hang"), deadline_s=0.5)
    assert [(r.reward, r.reason) for r in out] == [(1.0, None), (0.0, "verifier_timeout")]


def test_malformed_answers_are_verifier_errors():
    def wrong_length(completions):
        return [1.0]  # one result whatever the batch size: fine alone, wrong for a batch

    out = score_sync(wrong_length, samples("a", "b"))
    assert [(r.reward, r.reason) for r in out] == [(1.0, None), (1.0, None)]

    def nan(completions):
        return [float("nan")] * len(completions)

    out = score_sync(nan, samples("a"))
    assert (out[0].reward, out[0].reason) == (0.0, "verifier_error")
    assert "non-finite" in out[0].info["error"]


def test_overlong_policies():
    calls = []

    def one(completions, truncated):
        calls.append(list(truncated))
        return [1.0] * len(completions)

    batch = [Sample(ROW, "x", truncated=True, num_tokens=100), Sample(ROW, "y", num_tokens=90)]
    out = score_sync(one, batch)  # default: zero
    assert [(r.reward, r.reason) for r in out] == [(0.0, "truncated"), (1.0, None)]
    assert calls == [[False]]  # the truncated sample never reached the verifier
    out = score_sync(one, batch, overlong=OverlongPolicy(mode="score"))
    assert [r.reward for r in out] == [1.0, 1.0]
    # soft: penalty ramps from 0 at 80 tokens to -1 at 100
    out = score_sync(one, batch, overlong=OverlongPolicy(mode="soft", max_tokens=100, buffer_tokens=20))
    assert [r.reward for r in out] == [0.0, 0.5]
    with pytest.raises(ValueError, match="soft"):
        OverlongPolicy(mode="soft")


def test_code_tests_no_code_and_reward_modes():
    def verdict(req):
        assert req["language"] == "python" and req["tests"] == [{"type": "assert", "code": t} for t in ADD_TESTS]
        return response(["accepted", "wrong_answer", "accepted"] if "a - b" in req["code"] else ["accepted"] * 3)

    client = FakeClient(verdict)
    completions = [fenced(ADD_OK), "I think the answer is a + b", fenced("def add(a, b):\n    return a - b\n")]
    binary = rewards.get("code_tests", client=client)
    out = score_sync(binary, samples(*completions))
    assert [r.reward for r in out] == [1.0, 0.0, 0.0]
    assert [r.reason for r in out] == [None, "no_code", "wrong_answer"]
    assert out[0].info["code"] == ADD_OK and out[0].info["tests"] == ["accepted"] * 3
    assert len(client.batches) == 1 and len(client.batches[0]) == 2  # no request for the code-less one
    assert client.batches[0][0]["fail_fast"] is True  # binary: the first failure settles it

    rate = rewards.get("code_tests", client=client, mode="pass_rate")
    assert [r.reward for r in score_sync(rate, samples(*completions))] == [1.0, 0.0, pytest.approx(2 / 3)]
    assert client.batches[-1][0]["fail_fast"] is False
    thr = rewards.get("code_tests", client=client, mode="threshold", threshold=0.6)
    assert [r.reward for r in score_sync(thr, samples(*completions))] == [1.0, 0.0, 1.0]


def test_code_tests_timeout_reason_and_row_limits():
    row = code_row(ADD_TESTS)
    row["reward_model"]["ground_truth"].update(time_limit_s=0.5, prefix="import math")
    client = FakeClient(lambda req: response(["accepted", "time_limit_exceeded", "accepted"]))
    out = score_sync(rewards.get("code_tests", client=client), [Sample(row, fenced(ADD_OK))])
    assert (out[0].reward, out[0].reason) == (0.0, "timeout")
    req = client.batches[0][0]
    assert req["time_limit_s"] == 0.5 and req["code"] == "import math\n" + ADD_OK


def test_code_tests_sandbox_outage_is_a_verifier_error():
    class Down:
        async def execute_batch(self, requests):
            raise ConnectionError("sandbox unreachable")

    out = score_sync(rewards.get("code_tests", client=Down()), samples(fenced(ADD_OK), "no code"), deadline_s=5)
    assert [(r.reward, r.reason) for r in out] == [(0.0, "verifier_error"), (0.0, "no_code")]


def test_code_tests_needs_a_url(monkeypatch):
    monkeypatch.delenv("RLVR_SANDBOX_URLS", raising=False)
    with pytest.raises(ValueError, match="RLVR_SANDBOX_URLS"):
        rewards.get("code_tests")
    with pytest.raises(ValueError, match="unknown mode 'best'"):
        rewards.get("code_tests", urls="http://x:1", mode="best")


def test_format_numeric_and_composite():
    fmt = rewards.get("format")
    out = score_sync(fmt, samples(fenced(ADD_OK), fenced("def add(a, b:\n"), "plain"))
    assert [(r.reward, r.reason) for r in out] == [(1.0, None), (0.0, "syntax_error"), (0.0, "no_code")]

    num_row = {"prompt": [{"role": "user", "content": "6*7?"}], "data_source": "arith", "ability": "math",
               "reward_model": {"style": "rule", "ground_truth": {"answer": "42"}}, "extra_info": {}}
    num = rewards.get("numeric_match")
    out = score_sync(num, [Sample(num_row, c) for c in ["It is 42.", "\\boxed{42.0} not 41", "41", "no idea"]])
    assert [(r.reward, r.reason) for r in out] == [(1.0, None), (1.0, None), (0.0, "wrong_answer"), (0.0, "no_answer")]

    def not_applicable(completions):
        return [None] * len(completions)

    client = FakeClient(lambda req: response(["accepted"] * 3))
    comp = rewards.get(
        "composite",
        parts=[{"name": "code_tests", "weight": 0.75, "kwargs": {"client": client}}, {"name": "format", "weight": 0.25}],
        verifiers=[(not_applicable, 5.0)],
    )
    out = score_sync(comp, samples(fenced(ADD_OK), fenced("def add(a, b:\n")))
    # not_applicable is left out and the remaining weights renormalised to the full weight sum
    assert out[0].reward == pytest.approx(1.0 * 6.0)
    assert out[1].reward == pytest.approx(0.75 * 1.0 * 6.0)  # the sandbox (fake) accepts, format fails
    assert out[1].info["parts"]["format"]["reason"] == "syntax_error"
    with pytest.raises(ValueError, match="composite part 0"):
        rewards.get("composite", parts=[{"nam": "format"}])


def test_registry_register_get_and_unknown():
    @rewards.register("unit_const")
    def const(completions, value=0.5):
        return [value] * len(completions)

    out = score_sync(rewards.get("unit_const", value=0.75), samples("a"))
    assert out[0].reward == 0.75 and "unit_const" in rewards.names()
    with pytest.raises(ValueError, match="already registered"):
        rewards.register("unit_const")(lambda completions: [])
    with pytest.raises(UnknownVerifierError, match="unknown verifier 'nope'; available: .*code_tests"):
        rewards.get("nope")


def test_entry_point_discovery(tmp_path, monkeypatch):
    """A verifier from another installed distribution, found through the rlvr.verifiers group."""
    pkg = tmp_path / "thirdparty_judge.py"
    pkg.write_text(
        "from rlvr.rewards import RewardResult\n"
        "class LengthJudge:\n"
        "    def __init__(self, limit=3):\n"
        "        self.limit = limit\n"
        "    async def verify(self, batch):\n"
        "        return [RewardResult(float(len(s.completion) <= self.limit), {'reason': None}) for s in batch]\n"
    )
    dist = tmp_path / "thirdparty_judge-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-judge\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlvr.verifiers]\nshort_answer = thirdparty_judge:LengthJudge\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "short_answer" in rewards.names()
    v = rewards.get("short_answer", limit=2)
    assert v.name == "short_answer"
    assert [r.reward for r in score_sync(v, samples("ab", "abc"))] == [1.0, 0.0]
    sys.modules.pop("thirdparty_judge", None)


def test_registry_builds_by_explicit_kind_never_by_annotation_text():
    class Judge:
        name = "judge"

        async def verify(self, batch):
            return [RewardResult(0.5, {"reason": None}) for _ in batch]

    # a reward function whose return annotation merely mentions "Verifier" is still a reward function
    def scores(completions, **_) -> list[float] | VerifierScore:  # noqa: F821
        return [1.0] * len(completions)

    @rewards.register("unit_judge_factory", factory=True)
    def make_judge(offset=0.0):
        return Judge()

    rewards.register("unit_scores")(scores)
    rewards.register("unit_judge_object")(Judge())
    assert [r.reward for r in score_sync(rewards.get("unit_scores"), samples("a", "b"))] == [1.0, 1.0]
    assert [r.reward for r in score_sync(rewards.get("unit_judge_factory", offset=1.0), samples("a"))] == [0.5]
    assert rewards.get("unit_judge_object").name == "judge"
    with pytest.raises(TypeError, match="ready-made object: it takes no arguments"):
        rewards.get("unit_judge_object", limit=1)
    with pytest.raises(TypeError, match="factory=True"):
        rewards.register("unit_bad_factory", factory=True)(Judge)
