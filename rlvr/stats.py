"""Statistics for claims about learning: paired per-task differences with bootstrap confidence intervals.

A held-out gain is the mean over tasks of ``after - before`` (each a pass rate over the task's samples,
drawn with the same sampling seeds before and after), and its uncertainty a bootstrap over tasks
(``scipy.stats.bootstrap``, percentile method: it stays defined when every difference is the same, as in
the learning-rate-0 control, where it must be exactly 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["PairedDiff", "paired_bootstrap"]


@dataclass(frozen=True)
class PairedDiff:
    mean: float  # mean over tasks of after - before
    low: float  # confidence interval of the mean
    high: float
    n: int  # tasks
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] ({self.confidence:.0%} CI over {self.n} tasks)"


def paired_bootstrap(
    before: Sequence[float],
    after: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedDiff:
    """Mean of the per-task differences ``after[i] - before[i]`` and its bootstrap confidence interval
    (resampling tasks). Raises when the two lists do not pair up."""
    from scipy.stats import bootstrap

    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if b.shape != a.shape or b.ndim != 1 or len(b) == 0:
        raise ValueError(f"before and after must be equal-length, non-empty lists (got {b.shape} and {a.shape})")
    d = a - b
    if len(d) == 1 or np.all(d == d[0]):  # no spread: the interval is the point (scipy would warn)
        return PairedDiff(float(d.mean()), float(d.mean()), float(d.mean()), len(d), confidence)
    res = bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return PairedDiff(float(d.mean()), float(ci.low), float(ci.high), len(d), confidence)
