from fractions import Fraction
from math import comb

import pytest

from rlvr.eval.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 0, 1, 0.0),
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),
        (5, 4, 2, 1.0),  # fewer wrong samples than k: a correct one is always drawn
        (1, 1, 1, 1.0),
    ],
)
def test_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_closed_form_everywhere_small():
    for n in range(1, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - Fraction(comb(n - c, k), comb(n, k))
                assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12), (n, c, k)


def test_large_n_is_stable():
    exact = 1 - Fraction(comb(200 - 37, 100), comb(200, 100))
    assert pass_at_k(200, 37, 100) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(200, 1, 1) == pytest.approx(0.005, abs=1e-15)


def test_mean_and_errors():
    assert mean_pass_at_k([10, 5], [3, 2], 1) == pytest.approx((0.3 + 0.4) / 2)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="one \\(n, c\\) pair"):
        mean_pass_at_k([1], [], 1)
