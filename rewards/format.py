"""``format``: 1 when the completion has a fenced block in the row's language whose code parses.

Python is checked with :func:`ast.parse`. Other languages have no parser here, so a non-empty fenced
block is enough for them (the sandbox's compile step is the real check).
"""

from __future__ import annotations

import ast
import warnings

from rlvr.rewards.base import RewardResult, Sample
from rlvr.rewards.extract import extract_code
from rlvr.rewards.registry import register

__all__ = ["FormatVerifier"]


def _parses(code: str, language: str) -> bool:
    if language != "python":
        return True
    try:
        with warnings.catch_warnings():  # invalid escape sequences etc. are not format errors
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@register("format")
class FormatVerifier:
    name = "format"

    def __init__(self, language: str | None = None):
        self.language = language  # None: take it from each row's ground truth (python when absent)

    def _language(self, sample: Sample) -> str:
        if self.language:
            return self.language
        from rlvr.data.schema import ground_truth_of

        try:
            return ground_truth_of(sample.row).get("language", "python")
        except (KeyError, TypeError, ValueError):
            return "python"

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        out = []
        for s in batch:
            lang = self._language(s)
            code = extract_code(s.completion, lang)
            if code is None:
                out.append(RewardResult.fail("no_code", code=None))
            elif not _parses(code, lang):
                out.append(RewardResult.fail("syntax_error", code=code))
            else:
                out.append(RewardResult(1.0, {"reason": None, "code": code}))
        return out
