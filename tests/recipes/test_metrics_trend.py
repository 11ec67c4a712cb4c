import pytest

from rlvr.training.metrics import first_last_means, pass_rate_by, row_field


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


def test_row_field_follows_dotted_paths():
    row = {"data_source": "he", "extra_info": {"template": "choose", "n": 3}, "x": [1]}
    assert row_field(row, "data_source") == "he"
    assert row_field(row, "extra_info.template") == "choose"
    assert row_field(row, "extra_info.missing") is None
    assert row_field(row, "x.y") is None  # a list is not a mapping
    assert row_field(row, "nope.deeper") is None


def test_pass_rate_by_groups_and_sorts():
    keys = ["b", "a", "b", None, "b", 3]
    passed = [True, False, True, True, False, True]
    assert pass_rate_by(keys, passed) == {"3": 1.0, "?": 1.0, "a": 0.0, "b": 2 / 3}
    assert list(pass_rate_by(keys, passed)) == ["3", "?", "a", "b"]
    with pytest.raises(ValueError, match="2 keys for 1 samples"):
        pass_rate_by(["a", "b"], [True])
