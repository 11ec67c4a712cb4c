import pytest

from rlvr.metrics import first_last_means, pass_rate_by, reduce_metrics, row_field


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


def test_per_rank_metrics_combine_by_kind_not_by_blind_average():
    """Two learner ranks with 30 and 10 loss tokens: means weigh by tokens, extremes stay extremes,
    counts and the (globally normalised) loss add up, shared values are taken once."""
    rank0 = {
        "actor/num_tokens": 30, "actor/pg_loss": 0.25, "actor/clip_frac": 0.1, "actor/ratio_mean": 1.0,
        "actor/ratio_min": 0.7, "actor/ratio_max": 1.3, "actor/lr": 1e-4, "actor/grad_norm": 2.0,
        "actor/optimizer_steps": 2, "time/old_logprob": 1.5,
    }
    rank1 = {
        "actor/num_tokens": 10, "actor/pg_loss": -0.05, "actor/clip_frac": 0.5, "actor/ratio_mean": 2.0,
        "actor/ratio_min": 0.9, "actor/ratio_max": 4.0, "actor/lr": 1e-4, "actor/grad_norm": 2.0,
        "actor/optimizer_steps": 2, "time/old_logprob": 2.5,
    }
    out = reduce_metrics([rank0, rank1])
    assert out == {
        "actor/num_tokens": 40.0,
        "actor/pg_loss": pytest.approx(0.2),
        "actor/clip_frac": pytest.approx((0.1 * 30 + 0.5 * 10) / 40),  # 0.2, not the blind 0.3
        "actor/ratio_mean": pytest.approx((1.0 * 30 + 2.0 * 10) / 40),
        "actor/ratio_min": 0.7,
        "actor/ratio_max": 4.0,
        "actor/lr": 1e-4,
        "actor/grad_norm": 2.0,
        "actor/optimizer_steps": 2.0,
        "time/old_logprob": 2.5,  # the step waited for the slowest rank
    }


def test_reduce_metrics_edge_cases():
    # a micro-batch with no loss token only adds to counts; keys missing from a part are skipped
    parts = [{"num_tokens": 0, "pg_loss": 0.0, "clip_frac": 0.0}, {"num_tokens": 4, "pg_loss": 0.5, "clip_frac": 0.25, "kl": 0.1}]
    assert reduce_metrics(parts) == {"num_tokens": 4.0, "pg_loss": 0.5, "clip_frac": 0.25, "kl": 0.1}
    # no token anywhere: unweighted means; no weight key at all: every part counts once
    assert reduce_metrics([{"num_tokens": 0, "x": 1.0}, {"num_tokens": 0, "x": 3.0}])["x"] == 2.0
    assert reduce_metrics([{"x": 1.0}, {"x": 2.0}]) == {"x": 1.5}
    assert reduce_metrics([]) == {}
