"""Curation of the mixed file with references and trivial programs run in the real sandbox."""

from __future__ import annotations

import json

import pytest

from rlvr.data.curate import CurateOptions, curate
from rlvr.data.schema import read_rows, write_rows
from tests.data.mixed import EXPECTED, mixed_rows

pytestmark = pytest.mark.docker


def test_curate_mixed_file_in_sandbox(tmp_path, sandbox_url):
    rows = mixed_rows()
    src = tmp_path / "in.jsonl"
    write_rows(src, rows)
    report = curate(src, tmp_path / "out.jsonl", CurateOptions(sandbox_urls=[sandbox_url]))
    assert report.to_dict() == EXPECTED
    assert [r for _, r in read_rows(tmp_path / "out.jsonl")] == [rows[0]]
    rejected = {r["index"]: r for _, r in read_rows(tmp_path / "out.jsonl.rejected.jsonl")}
    assert rejected[1]["reason"] == "reference_failed"
    assert rejected[1]["detail"].startswith("status wrong_answer")
    assert rejected[2]["reason"] == "weak_tests"
    state = [json.loads(x) for x in (tmp_path / "out.jsonl.state.jsonl").read_text().splitlines()]
    assert [(s["index"], s["reason"]) for s in state] == [(0, None), (1, "reference_failed"), (2, "weak_tests")]
