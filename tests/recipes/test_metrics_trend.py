import pytest

from rlvr.training.metrics import first_last_means


def test_first_last_quarter_means():
    # 8 steps: quarters are 2 steps each
    assert first_last_means([0.1, 0.3, 0.5, 0.5, 0.5, 0.5, 0.6, 0.8]) == pytest.approx((0.2, 0.7))


def test_short_series_uses_one_step_each():
    assert first_last_means([0.25, 0.75]) == (0.25, 0.75)
    assert first_last_means([0.5]) == (0.5, 0.5)
    assert first_last_means([]) is None


def test_bad_fraction_is_named():
    with pytest.raises(ValueError, match="frac must be in"):
        first_last_means([1.0], frac=0.75)
