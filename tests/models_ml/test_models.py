"""Metrics, training with the strict backtest, tiers and score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.snapshots import plan_snapshots
from models_ml.features import numeric_feature_columns
from models_ml.metrics import mae, normalized_gini, rmse
from models_ml.scoring import assign_tiers, build_score_table
from models_ml.training import train_and_evaluate

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_mae_and_rmse_by_hand():
    assert mae([0, 10, 20], [1, 10, 17]) == pytest.approx(4 / 3)
    assert rmse([0, 10, 20], [1, 10, 17]) == pytest.approx(np.sqrt(10 / 3))


def test_poisson_deviance_is_scikit_learns_and_rewards_the_mean_not_the_median():
    from sklearn.metrics import mean_poisson_deviance

    from models_ml.metrics import poisson_deviance
    from models_ml.protocol import weighted_metrics

    rng = np.random.default_rng(3)
    y = rng.gamma(0.4, 200, 500) * (rng.random(500) < 0.45)  # over half zeros, like a 12-month label
    p = np.maximum(y * rng.uniform(0.6, 1.4, 500) + rng.uniform(1, 30, 500), 0.5)
    assert poisson_deviance(y, p) == pytest.approx(mean_poisson_deviance(y, p))
    assert weighted_metrics(y, p, np.ones((1, 500)))["deviance"][0] == pytest.approx(poisson_deviance(y, p))
    # by hand: y = (0, 2), mu = (1, 1): 2 (0 - 0 + 1) = 2 and 2 (2 log 2 - 1) -> mean 1 + 2 log 2 - 1
    assert poisson_deviance([0.0, 2.0], [1.0, 1.0]) == pytest.approx(2 * np.log(2))
    # the median (0 for most customers) wins on MAE and loses on deviance to the mean
    median, mean = np.full(500, np.median(y)), np.full(500, y.mean())
    assert mae(y, median) < mae(y, mean)
    assert poisson_deviance(y, mean) < poisson_deviance(y, median)


def test_decile_calibration_error_sees_what_the_total_hides():
    from models_ml.metrics import calibration_ratio, decile_calibration_error

    y = np.repeat(np.arange(1, 11, dtype=float), 10)
    assert decile_calibration_error(y, y) == 0.0
    # right in total, but the bottom half 2x too high and the top half 2/3 of its value
    twisted = np.where(y <= 5, y * 2, y - (y[y <= 5].sum() / (y > 5).sum()))
    assert calibration_ratio(y, twisted) == pytest.approx(1.0)
    assert decile_calibration_error(y, twisted) == pytest.approx(2 * (y[y <= 5].sum()) / y.sum())


def test_normalized_gini_by_hand():
    y = np.array([0.0, 0.0, 10.0, 30.0])
    # ranked by truth: cumulative shares 0.75, 1, 1, 1 -> sum 3.75; gini = 3.75/4 - 5/8 = 0.3125
    # ranked by [4, 3, 2, 1] (reverse): shares 0, 0, .25, 1 -> 1.25/4 - 5/8 = -0.3125
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert normalized_gini(y, [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranked by [0, 3, 2, 1]: order 1, 2, 3, 0 -> shares 0, .25, 1, 1 -> 2.25/4 - .625 = -0.0625
    assert normalized_gini(y, [0, 3, 2, 1]) == pytest.approx(-0.0625 / 0.3125)
    assert np.isnan(normalized_gini([0, 0], [1, 2]))


CUTOFFS = [f"2023-{m:02d}-{d}" for m, d in ((3, 31), (4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30),
                                             (10, 31), (11, 30), (12, 31))]


def synthetic_snapshots(n=1500, seed=0, cutoffs=CUTOFFS, horizon_days=90) -> pd.DataFrame:
    """Month-end snapshots of a shop whose customers keep a latent rate: what they spent in the last
    year and what they spend next both follow it."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.0, 1.0, n)
    frames = []
    for cutoff in cutoffs:
        frames.append(pd.DataFrame({
            "customer_id": [f"c{i}" for i in range(n)],
            "cutoff_date": pd.Timestamp(cutoff),
            "orders_count_365d": rng.poisson(rate * 3),
            "revenue_sum_365d": rng.poisson(rate * 3) * 20.0,
            "days_since_last_order": rng.integers(0, 365, n),
            "country": "UK",
            "horizon_days": horizon_days,
            "future_revenue": rng.poisson(rate * 3 * horizon_days / 365) * 20.0,
            "future_orders_count": 0,
        }))
    return pd.concat(frames, ignore_index=True)


def plan(horizon_days=90):
    """A year of data ending 2024-01-31, first orders 2022-12-01: month ends from 2023-03-31."""
    return plan_snapshots("2022-12-01", "2024-01-31", horizon_days, min_history_days=90)


def test_features_exclude_keys_labels_and_text():
    columns = numeric_feature_columns(synthetic_snapshots(10))
    assert columns == ["orders_count_365d", "revenue_sum_365d", "days_since_last_order"]


def test_training_backtests_strictly_then_fits_on_every_labelled_cutoff():
    p = plan()
    assert p.backtest.horizon_days == 90 and len(p.backtest.origins) == 3
    result = train_and_evaluate(synthetic_snapshots(), p, resamples=50)
    assert result.model.name in ("xgboost_offset", "xgboost")  # the candidate types, chosen on the backtest
    assert result.type_choice["chosen"] == result.model.name and result.type_choice["why"]
    assert result.backtest.origins == p.backtest.origins
    for origin, cutoffs in p.backtest.training_cutoffs.items():  # strictly out of time
        assert all(pd.Timestamp(c) + pd.Timedelta(days=90) <= pd.Timestamp(origin) for c in cutoffs)
    assert result.train_cutoffs == p.serving_cutoffs and result.rows_trained == 1500 * len(p.serving_cutoffs)
    assert result.rows_holdout == 1500 * 3
    assert result.holdout_metrics["normalized_gini"] > 0.3  # the latent rate drives both sides
    runner_up = {"xgboost_offset", "xgboost"} - {result.model.name}
    assert set(result.backtest.metrics) == {"candidate", *runner_up, "last_period", "last_period_scaled"}
    low, high = result.backtest.ci["candidate"]["deviance"]
    assert low <= result.holdout_metrics["deviance"] <= high
    assert result.fallback["type"] in ("last_period", "last_period_scaled")


def test_no_strict_backtest_on_data_too_short_is_said_and_nothing_overlaps():
    short = plan_snapshots("2023-01-01", "2023-06-30", 90, min_history_days=90)
    assert not short.backtest.feasible and "too short" in short.backtest.note
    result = train_and_evaluate(synthetic_snapshots(cutoffs=["2023-03-31"]), short)
    assert result.backtest is None and result.holdout_metrics == {}


def test_empty_training_set_is_a_clear_error():
    with pytest.raises(ValueError, match="no training snapshot has a full 90-day label window"):
        train_and_evaluate(synthetic_snapshots().iloc[:0], plan(), resamples=10)


def test_tiers_follow_rank_shares():
    tiers = assign_tiers(np.arange(10, dtype=float))  # 9 is the best
    assert list(tiers) == ["low"] * 5 + ["medium"] * 3 + ["high"] * 2


def test_a_point_mass_at_zero_is_low_and_a_large_tie_takes_the_tier_of_its_middle():
    """CDNOW's case: many customers predicted exactly 0 were "medium" because the tie took the tier of its
    best-ranked member."""
    values = np.concatenate([np.linspace(100, 10, 20), np.zeros(80)])
    tiers = assign_tiers(values)
    assert (tiers[20:] == "low").all() and (tiers[:20] == "high").all()
    block = np.concatenate([np.linspace(100, 60, 10), np.full(60, 5.0), np.linspace(4, 1, 30)])
    tiers = assign_tiers(block)  # ranks 11-70 tie: middle 40.5 of 100 -> medium (20%-50%)
    assert set(tiers[10:70]) == {"medium"} and (tiers[:10] == "high").all() and (tiers[70:] == "low").all()


def test_equal_predictions_share_a_tier_whatever_the_row_order():
    values = np.array([9.0, 5.0, 5.0, 5.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    tiers = assign_tiers(values, 0.2, 0.3)
    # 9 is high; the three 5s tie at ranks 2-4, middle 3 (top 30%): medium together; the 1s (middle 5.5) low
    assert list(tiers) == ["high"] + ["medium"] * 3 + ["low"] * 6
    reversed_tiers = assign_tiers(values[::-1], 0.2, 0.3)[::-1]
    assert list(reversed_tiers) == list(tiers)
    assert set(assign_tiers([5.0] * 5, 0.2, 0.4)) == {"medium"}  # nothing tells them apart: the middle tier
    with pytest.raises(ValueError):
        assign_tiers([1.0], 0.8, 0.5)


def test_score_table_refuses_nan_predictions():
    table = build_score_table(["a", "b"], "2024-01-01", [1.0, 2.0], "m", "3", pd.Timestamp("2024-01-02"))
    assert list(table.columns) == ["customer_id", "cutoff_date", "predicted_clv_12m", "p_no_purchase", "predicted_clv_p10",
                                   "predicted_clv_p50", "predicted_clv_p90", "discounted_margin_value", "clv_tier", "p_alive",
                                   "expected_orders_12m", "top_reasons", "reason_contributions", "model_name", "model_version", "scored_at", "horizon_days"]
    assert table["model_version"].tolist() == ["3", "3"]
    with pytest.raises(ValueError, match="1 predictions are NaN"):
        build_score_table(["a", "b"], "2024-01-01", [1.0, np.nan], "m", "3", pd.Timestamp("2024-01-02"))


def test_training_does_not_depend_on_row_order():
    data = synthetic_snapshots(500)
    shuffled = data.sample(frac=1.0, random_state=3)
    a, b = train_and_evaluate(data, plan(), resamples=20), train_and_evaluate(shuffled, plan(), resamples=20)
    assert a.holdout_metrics == b.holdout_metrics
    np.testing.assert_array_equal(a.model.predict(data), b.model.predict(data))


def test_ranking_metrics_by_hand():
    from models_ml.metrics import decile_table, disparate_impact_ratio, top_capture

    y = np.array([0.0, 0, 0, 0, 0, 0, 0, 0, 10, 90])
    pred = np.arange(10, dtype=float)
    assert top_capture(y, pred, 0.1) == pytest.approx(0.9)  # the top predicted customer holds 90 of 100
    assert top_capture(y, pred[::-1], 0.2) == 0.0
    table = decile_table(y, pred)
    assert table["actual_mean"].tolist() == y.tolist() and table["customers"].eq(1).all()
    assert disparate_impact_ratio([1.0, 3.0, 2.0, 2.0], ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert disparate_impact_ratio([1.0, 1.0, 4.0, 4.0], ["a", "a", "b", "b"]) == pytest.approx(0.25)


def test_decile_mape_skips_empty_bins_and_is_zero_when_exact():
    from models_ml.metrics import decile_mape

    y = np.repeat(np.arange(1, 11, dtype=float), 5)
    assert decile_mape(y, y) == 0.0
    assert decile_mape(y, y * 1.5) == pytest.approx(0.5)


def test_offset_model_scales_with_last_year_spend():
    """Trees alone cannot predict beyond the training range; with the log offset the prediction moves
    with each customer's own spend."""
    from models_ml.base import features_and_target
    from models_ml.gradient_boosting import OffsetXGBoostCLV, XGBoostCLV

    data = synthetic_snapshots(800).assign(tenure_days=100)  # a history-length-dependent column
    params = {"max_depth": 3, "n_estimators": 100}
    offset_model = OffsetXGBoostCLV(params, horizon_days=365, history_length_dependent=("tenure_days",)).fit(
        *features_and_target(data))
    plain = XGBoostCLV(params, horizon_days=365).fit(*features_and_target(data))
    whale = data.head(1).assign(revenue_sum_365d=data["revenue_sum_365d"].max() * 20)
    assert offset_model.predict(whale)[0] > 5 * plain.predict(whale)[0]
    assert "tenure_days" in plain.columns_ and "tenure_days" not in offset_model.columns_  # windowed features only
    # the excluded columns are the ones given (the pipeline gives what dbt's manifest marks), no others
    assert OffsetXGBoostCLV(params).fit(*features_and_target(data)).columns_ == plain.columns_
    assert offset_model.get_params()["history_length_dependent"] == ("tenure_days",)
