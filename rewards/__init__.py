"""Reward verifiers: the protocol, the failure-isolating runner and a registry by name.

    from rlvr.rewards import Sample, get, score_sync
    verifier = get("code_tests", urls=["http://127.0.0.1:8900"], mode="pass_rate")
    results = score_sync(verifier, [Sample(row, completion)], deadline_s=60)
"""

from rlvr.rewards.base import (
    FunctionVerifier,
    OverlongPolicy,
    RewardResult,
    Sample,
    Verifier,
    as_verifier,
    score,
    score_sync,
)
from rlvr.rewards.extract import extract_code
from rlvr.rewards.registry import get, names, register

__all__ = [
    "FunctionVerifier",
    "OverlongPolicy",
    "RewardResult",
    "Sample",
    "Verifier",
    "as_verifier",
    "extract_code",
    "get",
    "names",
    "register",
    "score",
    "score_sync",
]
