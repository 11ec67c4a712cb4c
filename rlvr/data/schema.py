"""The verifiable-prompt row (documented in SCHEMA.md), as pydantic models, plus row I/O.

Rows are kept as plain dicts everywhere (so nothing is silently altered or dropped); the models are
only used to *check* a row. Known nested structures forbid unknown keys so a typo such as
``expected_output`` is an error, while top-level columns beyond the schema are allowed (verl and TRL
pass extra columns through to reward functions).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "Message",
    "AssertTest",
    "StdioTest",
    "CallTest",
    "CodeGroundTruth",
    "AnswerGroundTruth",
    "RewardModel",
    "PromptRow",
    "RowError",
    "RowParseError",
    "check_row",
    "ground_truth_of",
    "problem_id",
    "prompt_text",
    "read_rows",
    "write_rows",
    "LANGUAGES",
]

LANGUAGES = ("python", "cpp")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # chat messages may carry e.g. "name"
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class AssertTest(_Strict):
    type: Literal["assert"]
    code: str = Field(min_length=1)


class StdioTest(_Strict):
    type: Literal["stdio"]
    stdin: str = ""
    expected_stdout: str


class CallTest(_Strict):
    type: Literal["call"]
    fn_name: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    expected: Any


TestCase = Annotated[AssertTest | StdioTest | CallTest, Field(discriminator="type")]


class CodeGroundTruth(_Strict):
    """Tests a program must pass. Limits here override the verifier's defaults for this row."""

    language: Literal["python", "cpp"]
    tests: list[TestCase] = Field(min_length=1)
    entry_point: str | None = None  # the function under test (assert/call kinds)
    prefix: str | None = None  # prepended to the extracted program, e.g. a HumanEval prompt's imports
    time_limit_s: float | None = Field(default=None, gt=0)
    memory_limit_mb: int | None = Field(default=None, gt=0)
    compare: Literal["exact", "tokens", "float"] | None = None

    @model_validator(mode="after")
    def _kinds_fit_language(self) -> CodeGroundTruth:
        kinds = sorted({t.type for t in self.tests})
        if len(kinds) > 1:  # the sandbox runs one kind per request
            raise ValueError(f"tests: all tests of a row must have one type, got {kinds}")
        if self.language != "python":
            for i, t in enumerate(self.tests):
                if t.type != "stdio":
                    raise ValueError(f"tests.{i}: {t.type!r} tests need language python (got {self.language!r})")
        return self


class AnswerGroundTruth(_Strict):
    """Non-code tasks (e.g. the numeric exact-match verifier): the expected final answer."""

    answer: str | int | float


class RewardModel(_Strict):
    style: Literal["rule"]
    ground_truth: CodeGroundTruth | AnswerGroundTruth

    @field_validator("ground_truth", mode="before")
    @classmethod
    def _decode(cls, v: Any) -> Any:
        # verl-style parquet stores nested test lists as a JSON string
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"ground_truth is a string but not valid JSON ({exc})") from None
        if isinstance(v, dict) and "tests" in v:
            return CodeGroundTruth.model_validate(v)  # precise errors instead of a union's double report
        return v


class PromptRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: list[Message] = Field(min_length=1)
    data_source: str = Field(min_length=1)
    ability: str = Field(min_length=1)
    reward_model: RewardModel
    extra_info: dict[str, Any] = Field(default_factory=dict)


class RowError(ValueError):
    """One problem in one row: ``index`` (0-based row number), ``field`` (dotted path), ``message``."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(f"row {index}: {field}: {message}")
        self.index, self.field, self.message = index, field, message


def check_row(row: Any, index: int) -> list[RowError]:
    """Every problem with ``row`` (empty list when valid)."""
    if not isinstance(row, dict):
        return [RowError(index, "<row>", f"a row must be a JSON object, got {type(row).__name__}")]
    try:
        PromptRow.model_validate(row)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            # drop pydantic's union-branch names (e.g. "CodeGroundTruth") from the path
            loc = [p for p in loc if p not in ("CodeGroundTruth", "AnswerGroundTruth", "assert", "stdio", "call")]
            msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
            errors.append(RowError(index, ".".join(loc) or "<row>", msg))
        return errors
    return []


def ground_truth_of(row: dict[str, Any]) -> dict[str, Any]:
    """The row's ground truth as a dict (decoding the JSON-string form)."""
    gt = row["reward_model"]["ground_truth"]
    return json.loads(gt) if isinstance(gt, str) else gt


def prompt_text(row: dict[str, Any]) -> str:
    """The user-visible prompt (all non-assistant message contents), for dedup and decontamination."""
    return "\n".join(m.get("content", "") for m in row.get("prompt", []) if m.get("role") != "assistant")


def problem_id(row: dict[str, Any]) -> str:
    """A stable id: ``extra_info.id``, else ``data_source:extra_info.index``, else a prompt hash."""
    extra = row.get("extra_info") or {}
    if extra.get("id") is not None:
        return str(extra["id"])
    if extra.get("index") is not None:
        return f"{row.get('data_source')}:{extra['index']}"
    blob = json.dumps(row.get("prompt"), sort_keys=True, ensure_ascii=False)
    return "sha1:" + hashlib.sha1(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ reading / writing
class RowParseError(ValueError):
    """A line that is not JSON; ``line`` keeps its text so a rejects file can hold it verbatim."""

    def __init__(self, message: str, line: str = ""):
        super().__init__(message)
        self.line = line


def read_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, row)`` from JSONL (optionally .gz), a JSON list, or parquet.

    JSON is parsed line by line with the standard library so rows come back exactly as written and a
    broken line becomes a per-row problem (yielded as a :class:`RowParseError`) instead of failing the
    whole file. Parquet goes through ``datasets``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{str(p)!r} does not exist")
    name = p.name.lower()
    if name.endswith(".parquet"):
        from datasets import Dataset

        yield from enumerate(Dataset.from_parquet(str(p), keep_in_memory=True).to_list())
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8") as fh:
        if name.endswith((".json", ".json.gz")):
            data = json.load(fh)
            if not isinstance(data, list):
                raise RowParseError(f"{str(p)!r}: a .json file must hold a list of rows")
            yield from enumerate(data)
            return
        index = 0
        for line in fh:
            if not line.strip():
                continue
            try:
                yield index, json.loads(line)
            except json.JSONDecodeError as exc:
                yield index, RowParseError(f"invalid JSON: {exc}", line.rstrip("\n"))
            index += 1


def _for_parquet(row: dict[str, Any]) -> dict[str, Any]:
    # Arrow needs one type per column; tests mix argument types, so ground truth travels as JSON text
    rm = row.get("reward_model")
    if isinstance(rm, dict) and not isinstance(rm.get("ground_truth"), str):
        row = {**row, "reward_model": {**rm, "ground_truth": json.dumps(rm["ground_truth"])}}
    return row


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows atomically (temp file + rename): JSONL exactly as given, or verl-style parquet."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if p.name.lower().endswith(".parquet"):
        from datasets import Dataset

        Dataset.from_list([_for_parquet(r) for r in rows]).to_parquet(str(tmp))
    else:
        opener = gzip.open if p.name.lower().endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, p)
