"""Curation logic with a scripted executor (the real-sandbox run is in test_curate_sandbox.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rlvr.data.curate import CurateOptions, curate, trivial_programs
from rlvr.data.schema import read_rows, write_rows
from tests.data.mixed import EXPECTED, mixed_rows
from tests.rewards.helpers import SyncFakeClient, response


def local_verdict(req):
    """Runs trusted test programs in-process: enough to exercise curate's bookkeeping."""
    statuses = []
    for t in req["tests"]:
        ns: dict = {}
        try:
            exec(req["code"], ns)
            exec(t["code"], ns)
            statuses.append("accepted")
        except AssertionError:
            statuses.append("wrong_answer")
        except Exception:
            statuses.append("runtime_error")
    return response(statuses)


def test_trivial_programs():
    gt = {"language": "python", "entry_point": "f", "tests": [{"type": "call", "fn_name": "g", "args": [], "expected": 1}]}
    assert trivial_programs(gt) == ["pass\n", "def f(*args, **kwargs):\n    return None\n\ndef g(*args, **kwargs):\n    return None\n\n"]
    assert trivial_programs({"language": "cpp", "tests": []}) == ["int main() { return 0; }\n"]


def test_curate_mixed_file_exact_report(tmp_path):
    rows = mixed_rows()
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    raw_before = src.read_bytes()
    client = SyncFakeClient(local_verdict)
    report = curate(src, tmp_path / "out.jsonl", CurateOptions(), client=client)
    assert report.to_dict() == EXPECTED
    assert json.loads((tmp_path / "out.jsonl.report.json").read_text()) == EXPECTED
    assert [r for _, r in read_rows(tmp_path / "out.jsonl")] == [rows[0]]  # kept verbatim
    rejected = [r for _, r in read_rows(tmp_path / "out.jsonl.rejected.jsonl")]
    assert [(r["index"], r["reason"]) for r in rejected] == [
        (1, "reference_failed"), (2, "weak_tests"), (3, "duplicate"), (4, "near_duplicate"),
        (5, "contaminated"), (6, "invalid")]
    assert [r["row"] for r in rejected] == rows[1:]  # nothing lost, nothing changed
    assert rejected[2]["detail"] == "same prompt as row 0" and rejected[3]["detail"] == "similar to row 0"
    assert src.read_bytes() == raw_before
    # sandbox work: reference + 2 trivial programs for each of the 3 rows that reach the sandbox
    assert sum(len(b) for b in client.batches) == 9


def test_near_dup_threshold_one_keeps_near_duplicates(tmp_path):
    # templated prompts differing only in constants are near duplicates; threshold 1 = exact only
    rows = mixed_rows()
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    out = tmp_path / "new" / "dir" / "out.jsonl"  # missing folders are created
    report = curate(src, out, CurateOptions(near_dup_threshold=1.0), client=SyncFakeClient(local_verdict))
    rejected = [r for _, r in read_rows(out.with_name("out.jsonl.rejected.jsonl"))]
    assert [(r["index"], r["reason"]) for r in rejected] == [
        (1, "reference_failed"), (2, "weak_tests"), (3, "duplicate"), (5, "contaminated"), (6, "invalid")]
    assert [r for _, r in read_rows(out)] == [rows[0], rows[4]]
    assert report.dropped.get("near_duplicate", 0) == 0


def test_curate_resumes_after_a_crash(tmp_path):
    rows = mixed_rows()
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    calls = []

    def flaky(req):
        calls.append(req)
        if len(calls) > 3:  # dies after the first row's three programs
            raise ConnectionError("sandbox went away")
        return local_verdict(req)

    opts = CurateOptions(batch_size=1)
    with pytest.raises(ConnectionError):
        curate(src, tmp_path / "out.jsonl", opts, client=SyncFakeClient(flaky))
    assert not (tmp_path / "out.jsonl").exists()  # outputs are only written complete
    client = SyncFakeClient(local_verdict)
    report = curate(src, tmp_path / "out.jsonl", opts, client=client)
    assert report.resumed == 1 and report.kept == 1 and report.dropped == EXPECTED["dropped"]
    assert sum(len(b) for b in client.batches) == 6
    fresh = curate(src, tmp_path / "out.jsonl", CurateOptions(resume=False), client=SyncFakeClient(local_verdict))
    assert fresh.resumed == 0


def test_difficulty_filter_and_local_decontamination(tmp_path):
    rows = mixed_rows()[:3]
    rows[2]["extra_info"]["id"] = "noop-task"
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    rates = tmp_path / "rates.jsonl"
    write_rows(rates, [{"id": "unit:0", "pass_rate": 1.0}, {"id": "unit:1", "n": 4, "c": 0}])
    opts = CurateOptions(pass_rates=str(rates), min_pass_rate=0.1, max_pass_rate=0.9, reference_check=False)
    report = curate(src, tmp_path / "out.jsonl", opts)
    assert report.dropped == {"too_hard": 1, "too_easy": 1} and report.unrated == 1 and report.kept == 1

    evalset = tmp_path / "eval.txt"
    evalset.write_text("Multiply two numbers and return their product. From a private benchmark.")
    opts = CurateOptions(decontaminate_files=[str(evalset)], ngram=5, reference_check=False, decontaminate_humaneval=False)
    report = curate(src, tmp_path / "out2.jsonl", opts)
    assert report.dropped == {"contaminated": 1}
    rejected = [r for _, r in read_rows(tmp_path / "out2.jsonl.rejected.jsonl")]
    assert rejected[0]["detail"] == "shares 3 5-gram(s), e.g. 'multiply two numbers and return'"


def test_curate_rejects_rows_without_reference_and_same_in_out(tmp_path):
    rows = mixed_rows()[:1]
    rows[0]["extra_info"].pop("reference_solution")
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    report = curate(src, tmp_path / "o.jsonl", CurateOptions(), client=SyncFakeClient(local_verdict))
    assert report.dropped == {"no_reference": 1}
    report = curate(src, tmp_path / "o.jsonl", CurateOptions(require_reference=False), client=SyncFakeClient(local_verdict))
    assert report.kept == 1
    with pytest.raises(ValueError, match="OUT must differ from IN"):
        curate(src, src)


def test_curate_cli_without_sandbox(tmp_path):
    src = tmp_path / "in.jsonl"
    write_rows(src, mixed_rows())
    res = CliRunner().invoke(__import__("rlvr.cli", fromlist=["app"]).app,
                             ["data", "curate", str(src), str(tmp_path / "out.jsonl"), "--no-reference-check"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out.jsonl.report.json").read_text())["dropped"] == {
        "invalid": 1, "duplicate": 1, "near_duplicate": 1, "contaminated": 1}
