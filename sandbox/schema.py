"""Request models of the sandbox API (validated by pydantic; a bad field is named in the 422)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rlvr.sandbox.languages import LANGUAGES
from rlvr.sandbox.verdict import COMPARE_MODES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StdioTest(_Strict):
    type: Literal["stdio"]
    stdin: str = ""
    expected_stdout: str


class AssertTest(_Strict):
    type: Literal["assert"]
    code: str


class CallTest(_Strict):
    type: Literal["call"]
    fn_name: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    expected: Any  # required (null when the function must return None): a missing one would accept anything


Test = Annotated[StdioTest | AssertTest | CallTest, Field(discriminator="type")]


class ExecuteRequest(_Strict):
    language: str
    code: str
    tests: list[Test] = Field(default_factory=list)
    stdin: str = ""  # only used when there are no tests: the program runs once on it
    time_limit_s: float = Field(default=5.0, gt=0, le=60)
    memory_limit_mb: int = Field(default=512, ge=32, le=16384)
    compare: Literal["exact", "tokens", "float"] = "exact"
    # finite and at most 1 (100% relative): a larger or infinite tolerance would accept any number
    float_tol: float = Field(default=1e-6, ge=0, le=1, allow_inf_nan=False)
    fail_fast: bool = False
    first_k: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ExecuteRequest:
        assert set(COMPARE_MODES) == {"exact", "tokens", "float"}
        if self.language not in LANGUAGES:
            raise ValueError(f"language: unknown language {self.language!r}; known: {sorted(LANGUAGES)}")
        lang = LANGUAGES[self.language]
        types = {t.type for t in self.tests}
        if len(types) > 1:
            raise ValueError(f"tests: all tests of one request must have the same type, got {sorted(types)}")
        for i, t in enumerate(self.tests):
            if t.type not in lang.test_types:
                raise ValueError(f"tests[{i}].type: {t.type!r} tests are not supported for language "
                                 f"{self.language!r} (supported: {sorted(lang.test_types)})")
        return self

    @property
    def kind(self) -> str:
        return self.tests[0].type if self.tests else "run"

    def selected_tests(self) -> list:
        return self.tests[: self.first_k] if self.first_k else list(self.tests)


class BatchRequest(_Strict):
    requests: list[ExecuteRequest]


def error_message(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each starting with the dotted path of the bad field."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("body",))
        loc = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "request")
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
