"""``composite``: a weighted sum of other verifiers, e.g. ``0.9 * code_tests + 0.1 * format``.

Parts run concurrently through :func:`rlvr.rewards.base.score`, so one failing part only zeroes its own
term. A part's ``not_applicable`` result is left out and the remaining weights renormalised (TRL's
``None`` semantics). The info keeps every part's reward and info under its name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rlvr.rewards.base import OverlongPolicy, RewardResult, Sample, as_verifier, score
from rlvr.rewards.registry import register

__all__ = ["CompositeVerifier"]


@register("composite")
class CompositeVerifier:
    name = "composite"

    def __init__(self, parts: list[dict[str, Any]] | None = None, deadline_s: float = 60.0, verifiers: Any = None):
        """``parts``: ``[{"name": "code_tests", "weight": 0.9, "kwargs": {...}}, ...]`` (built from the
        registry), or ``verifiers``: ``[(verifier_object, weight), ...]`` already built."""
        from rlvr.rewards import registry

        built: list[tuple[Any, float]] = []
        for i, p in enumerate(parts or []):
            unknown = set(p) - {"name", "weight", "kwargs"}
            if "name" not in p or unknown:
                raise ValueError(f"composite part {i}: needs 'name' (+ optional weight, kwargs); bad keys {unknown}")
            built.append((registry.get(p["name"], **p.get("kwargs", {})), float(p.get("weight", 1.0))))
        built += [(as_verifier(v), float(w)) for v, w in (verifiers or [])]
        if not built:
            raise ValueError("composite needs at least one part")
        self.parts = built
        self.deadline_s = deadline_s

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        # truncation is handled by the caller's policy, so parts see every sample as given
        keep = OverlongPolicy(mode="score")
        per_part = await asyncio.gather(*(score(v, batch, self.deadline_s, keep) for v, _ in self.parts))
        out = []
        for j in range(len(batch)):
            total = weight = 0.0
            info: dict[str, Any] = {"reason": None, "parts": {}}
            for (v, w), results in zip(self.parts, per_part, strict=True):
                r = results[j]
                info["parts"][v.name] = {"reward": r.reward, "weight": w, **r.info}
                if r.reason == "not_applicable":
                    continue
                total += w * r.reward
                weight += w
                if info["reason"] is None and r.reason is not None:
                    info["reason"] = r.reason
            if weight == 0.0:
                out.append(RewardResult(0.0, {**info, "reason": "not_applicable"}))
            else:
                out.append(RewardResult(total * sum(w for _, w in self.parts) / weight, info))
        return out
