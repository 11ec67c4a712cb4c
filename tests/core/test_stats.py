"""Paired bootstrap over tasks: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr.stats import paired_bootstrap


def test_the_interval_of_a_known_mean_matches_the_normal_approximation():
    # 100 tasks, half gain 1 and half 0: mean 0.5, standard error 0.5 / sqrt(100) = 0.05
    before = np.zeros(100)
    after = np.array([0.0, 1.0] * 50)
    d = paired_bootstrap(before, after)
    assert d.mean == 0.5 and d.n == 100
    assert d.low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.012)
    assert d.high == pytest.approx(0.5 + 1.96 * 0.05, abs=0.012)


def test_identical_results_give_exactly_zero_with_a_zero_width_interval():
    scores = np.linspace(0, 1, 30)
    d = paired_bootstrap(scores, scores)
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0)
    shifted = paired_bootstrap(scores, scores - 0.25)
    assert (shifted.mean, shifted.low, shifted.high) == pytest.approx((-0.25, -0.25, -0.25))


def test_the_interval_is_reproducible_and_covers_the_truth():
    rng = np.random.default_rng(1)
    before = rng.uniform(size=200)
    after = before + 0.1 + rng.normal(0, 0.2, size=200)
    a, b = paired_bootstrap(before, after, seed=3), paired_bootstrap(before, after, seed=3)
    assert a == b
    assert a.low < 0.1 < a.high and a.low > 0.04
    assert "95% CI over 200 tasks" in str(a)


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([0.1, 0.2], [0.3])
