"""Schema checks, validate CLI, row I/O and importers."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest
from typer.testing import CliRunner

from rlvr.cli import app
from rlvr.data.importers import humaneval_rows, import_record
from rlvr.data.schema import check_row, ground_truth_of, problem_id, read_rows, write_rows
from rlvr.data.validate import validate_file
from tests.rewards.helpers import ADD_TESTS, code_row

GOOD = code_row(ADD_TESTS, extra_note="kept as is")


def errors_of(row):
    return [(e.field, e.message) for e in check_row(row, 7)]


def test_good_rows_pass_including_verl_string_ground_truth_and_extra_columns():
    assert errors_of(GOOD) == []
    s = json.loads(json.dumps(GOOD))
    s["reward_model"]["ground_truth"] = json.dumps(s["reward_model"]["ground_truth"])
    s["my_column"] = 3
    assert errors_of(s) == []
    num = {**GOOD, "reward_model": {"style": "rule", "ground_truth": {"answer": 42}}}
    assert errors_of(num) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r.pop("prompt"), [("prompt", "Field required")]),
        (lambda r: r.update(prompt=[]), [("prompt", "List should have at least 1 item after validation, not 0")]),
        (lambda r: r["prompt"][0].update(role="robot"),
         [("prompt.0.role", "Input should be 'system', 'user', 'assistant' or 'tool'")]),
        (lambda r: r.update(data_source=""), [("data_source", "String should have at least 1 character")]),
        (lambda r: r["reward_model"].update(style="model"), [("reward_model.style", "Input should be 'rule'")]),
        (lambda r: r["reward_model"]["ground_truth"].update(language="rust"),
         [("reward_model.ground_truth.language", "Input should be 'python' or 'cpp'")]),
        (lambda r: r["reward_model"]["ground_truth"].update(tests=[]),
         [("reward_model.ground_truth.tests", "List should have at least 1 item after validation, not 0")]),
        (lambda r: r["reward_model"]["ground_truth"]["tests"].append({"type": "stdio", "stdin": "1", "expected_output": "1"}),
         [("reward_model.ground_truth.tests.3.expected_stdout", "Field required"),
          ("reward_model.ground_truth.tests.3.expected_output", "unknown field")]),
        (lambda r: r["reward_model"]["ground_truth"]["tests"].append({"type": "shell", "code": "x"}),
         [("reward_model.ground_truth.tests.3",
           "Input tag 'shell' found using 'type' does not match any of the expected tags: 'assert', 'stdio', 'call'")]),
        (lambda r: r["reward_model"].update(ground_truth="{not json"),
         [("reward_model.ground_truth",
           "Value error, ground_truth is a string but not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))")]),
        (lambda r: r.update(extra_info=[1]), [("extra_info", "Input should be a valid dictionary")]),
    ],
)
def test_bad_rows_name_the_field(mutate, expected):
    row = json.loads(json.dumps(GOOD))
    mutate(row)
    assert errors_of(row) == expected


def test_one_test_type_per_row():
    row = json.loads(json.dumps(GOOD))
    row["reward_model"]["ground_truth"]["tests"].append({"type": "stdio", "stdin": "", "expected_stdout": "3"})
    assert errors_of(row) == [("reward_model.ground_truth",
                               "Value error, tests: all tests of a row must have one type, got ['assert', 'stdio']")]


def test_cpp_rows_only_take_stdio_tests():
    row = json.loads(json.dumps(GOOD))
    row["reward_model"]["ground_truth"]["language"] = "cpp"
    assert errors_of(row) == [("reward_model.ground_truth",
                               "Value error, tests.0: 'assert' tests need language python (got 'cpp')")]


def test_validate_cli_reports_every_bad_row_and_writes_nothing(tmp_path):
    bad1 = json.loads(json.dumps(GOOD))
    bad1["reward_model"]["ground_truth"]["tests"][1] = {"type": "assert"}
    bad2 = {**GOOD, "ability": 5}
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(GOOD), json.dumps(bad1), "{broken", json.dumps(bad2), json.dumps([1, 2])]
    path.write_text("\n".join(lines) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(app, ["data", "validate", str(path)])
    assert res.exit_code == 2
    out = res.output
    assert "row 1: reward_model.ground_truth.tests.1.code: Field required" in out
    assert "row 2: <json>: invalid JSON: Expecting property name enclosed in double quotes" in out
    assert "row 3: ability: Input should be a valid string" in out
    assert "row 4: <row>: a row must be a JSON object, got list" in out
    assert "4 of 5 rows are invalid (4 problems)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    ok = tmp_path / "ok.jsonl"
    write_rows(ok, [GOOD, GOOD])
    res = CliRunner().invoke(app, ["data", "validate", str(ok)])
    assert res.exit_code == 0 and "2 rows valid" in res.output
    res = CliRunner().invoke(app, ["data", "validate", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_rows_round_trip_jsonl_and_parquet(tmp_path):
    call = json.loads(json.dumps(GOOD))
    call["reward_model"]["ground_truth"]["tests"] = [
        {"type": "call", "fn_name": "f", "args": [[1, 2], "x", None], "expected": {"k": 1.5}},
        {"type": "call", "fn_name": "f", "args": [3], "expected": "str"},
    ]
    rows = [GOOD, call]
    write_rows(tmp_path / "r.jsonl", rows)
    assert [r for _, r in read_rows(tmp_path / "r.jsonl")] == rows
    write_rows(tmp_path / "r.parquet", rows)
    back = [r for _, r in read_rows(tmp_path / "r.parquet")]
    assert [ground_truth_of(r) for r in back] == [ground_truth_of(r) for r in rows]
    assert n_errors(tmp_path / "r.parquet") == 0
    assert back[1]["prompt"] == rows[1]["prompt"]


def n_errors(path):
    return len(validate_file(path)[1])


def test_problem_id():
    assert problem_id({**GOOD, "extra_info": {"id": "HumanEval/3"}}) == "HumanEval/3"
    assert problem_id({**GOOD, "extra_info": {"index": 4}}) == "unit:4"
    assert problem_id(GOOD).startswith("sha1:") and problem_id(GOOD) == problem_id(json.loads(json.dumps(GOOD)))


# ----------------------------------------------------------------------------------------- importers
def test_humaneval_import_uses_the_wheel():
    rows = humaneval_rows()
    assert len(rows) == 164 and all(check_row(r, i) == [] for i, r in enumerate(rows))
    r0 = rows[0]
    gt = ground_truth_of(r0)
    assert r0["extra_info"]["id"] == "HumanEval/0" and gt["entry_point"] == "has_close_elements"
    assert gt["prefix"] == "from typing import List"
    assert gt["tests"][0]["code"].rstrip().endswith("check(has_close_elements)")
    assert r0["extra_info"]["reference_solution"].startswith("from typing import List")


def test_mbpp_import():
    rec = {"task_id": 2, "text": "Write a function to find shared elements.", "code": "def similar_elements(a, b):\n  return tuple(set(a) & set(b))",
           "test_list": ["assert set(similar_elements((3, 4), (4, 5))) == set((4,))", "assert similar_elements((1,), (2,)) == ()"],
           "test_setup_code": "", "challenge_test_list": []}
    row = import_record("mbpp", rec, 0)
    assert check_row(row, 0) == []
    gt = ground_truth_of(row)
    assert gt["entry_point"] == "similar_elements"
    assert [t["code"] for t in gt["tests"]] == rec["test_list"]
    assert row["extra_info"] == {"id": "mbpp/2", "index": 0, "reference_solution": rec["code"]}
    assert "assert set(similar_elements" in row["prompt"][0]["content"]


def test_apps_import_stdio_and_call():
    stdio = {"problem_id": 7, "question": "Sum two ints.", "solutions": json.dumps(["print(sum(map(int, input().split())))"]),
             "input_output": json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}), "difficulty": "introductory"}
    row = import_record("apps", stdio, 0)
    assert check_row(row, 0) == []
    assert ground_truth_of(row)["tests"] == [{"type": "stdio", "stdin": "1 2\n", "expected_stdout": "3\n"},
                                             {"type": "stdio", "stdin": "3 4\n", "expected_stdout": "7\n"}]
    call = {"problem_id": 8, "question": "q", "solutions": "[]", "starter_code": "def f(x):\n",
            "input_output": json.dumps({"fn_name": "f", "inputs": [[1], [[1, 2]]], "outputs": [[2], [[2, 3]]]})}
    row = import_record("apps", call, 1)
    assert ground_truth_of(row)["tests"] == [{"type": "call", "fn_name": "f", "args": [1], "expected": 2},
                                             {"type": "call", "fn_name": "f", "args": [[1, 2]], "expected": [2, 3]}]
    assert "reference_solution" not in row["extra_info"] and "def f(x):" in row["prompt"][0]["content"]


def test_codecontests_import_prefers_python3_reference():
    rec = {"name": "1A", "description": "Echo.", "public_tests": {"input": ["a\n"], "output": ["a\n"]},
           "private_tests": {"input": ["b\n"], "output": ["b\n"]}, "generated_tests": {"input": [], "output": []},
           "solutions": {"language": [2, 3], "solution": ["int main(){}", "print(input())"]}}
    row = import_record("codecontests", rec, 0)
    gt = ground_truth_of(row)
    assert gt["language"] == "python" and len(gt["tests"]) == 2
    assert row["extra_info"]["reference_solution"] == "print(input())"
    rec["solutions"] = {"language": [2], "solution": ["int main(){}"]}
    row = import_record("codecontests", rec, 0)
    assert ground_truth_of(row)["language"] == "cpp" and check_row(row, 0) == []


def test_livecodebench_import_functional_and_compressed_private():
    private = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(
        [{"input": "5\n", "output": "10\n", "testtype": "stdin"}])))).decode()
    stdin_rec = {"question_id": "abc1", "question_title": "T", "question_content": "Double it.", "platform": "atcoder",
                 "starter_code": "", "public_test_cases": json.dumps([{"input": "1\n", "output": "2\n", "testtype": "stdin"}]),
                 "private_test_cases": private, "metadata": "{}", "difficulty": "easy", "contest_date": "2024-01-01"}
    row = import_record("livecodebench", stdin_rec, 0)
    assert [t["stdin"] for t in ground_truth_of(row)["tests"]] == ["1\n", "5\n"]
    fn_rec = {**stdin_rec, "private_test_cases": "", "metadata": json.dumps({"func_name": "twoSum"}),
              "public_test_cases": json.dumps([{"input": "[2, 7]\n9", "output": "[0, 1]", "testtype": "functional"}])}
    row = import_record("livecodebench", fn_rec, 1)
    assert ground_truth_of(row)["tests"] == [{"type": "call", "fn_name": "twoSum", "args": [[2, 7], 9], "expected": [0, 1]}]


def test_import_cli_reports_bad_records_and_writes_nothing(tmp_path):
    src = tmp_path / "mbpp.jsonl"
    src.write_text(json.dumps({"task_id": 1, "text": "t", "code": "c", "test_list": []}) + "\n"
                   + json.dumps({"task_id": 2, "text": "t"}) + "\n")
    out = tmp_path / "rows.jsonl"
    res = CliRunner().invoke(app, ["data", "import", "mbpp", str(src), "--out", str(out)])
    assert res.exit_code == 2
    assert "record 0: test_list is empty" in res.output and "record 1: missing field 'test_list'" in res.output
    assert not out.exists()
    res = CliRunner().invoke(app, ["data", "import", "humaneval", "--out", str(out)])
    assert res.exit_code == 0 and len(list(read_rows(out))) == 164
