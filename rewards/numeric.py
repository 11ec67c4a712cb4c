"""``numeric_match``: a non-code example of the protocol. The last number in the completion (or the
content of the last ``\\boxed{...}``) must equal ``ground_truth.answer`` within ``tolerance``."""

from __future__ import annotations

import math
import re

from rlvr.rewards.base import RewardResult, Sample
from rlvr.rewards.registry import register

__all__ = ["NumericMatchVerifier", "final_number"]

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def final_number(text: str) -> float | None:
    """The answer a completion commits to: the last ``\\boxed{}`` if any, else the last number."""
    boxed = _BOXED.findall(text)
    source = boxed[-1] if boxed else text
    found = _NUMBER.findall(source)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


@register("numeric_match")
class NumericMatchVerifier:
    name = "numeric_match"

    def __init__(self, tolerance: float = 1e-6):
        self.tolerance = tolerance

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        from rlvr.data.schema import ground_truth_of

        out = []
        for s in batch:
            expected = float(ground_truth_of(s.row)["answer"])
            got = final_number(s.completion)
            if got is None:
                out.append(RewardResult.fail("no_answer", answer=None))
            elif math.isclose(got, expected, rel_tol=0.0, abs_tol=self.tolerance):
                out.append(RewardResult(1.0, {"reason": None, "answer": got}))
            else:
                out.append(RewardResult.fail("wrong_answer", answer=got, expected=expected))
        return out
