"""The evaluation protocol (snapshot calendar, strict backtest, paired bootstrap) and the gates decided on
it, each tested where it must fire and where it must stay quiet."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from clv.snapshots import month_ends, plan_snapshots
from models_ml.gates import GateConfig, choose_fallback, evaluate_gates, gates_passed
from models_ml.metrics import calibration_ratio, mae, normalized_gini
from models_ml.protocol import (
    BacktestResult,
    evaluate,
    paired_bootstrap,
    weighted_metrics,
)

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_calendar_cutoffs_do_not_move_with_the_scoring_cutoff():
    week1 = plan_snapshots("2022-01-01", "2024-03-04", 180)
    week2 = plan_snapshots("2022-01-01", "2024-03-11", 180)
    assert week1.training_cutoffs == week2.training_cutoffs  # month ends; a new one only when its label matures
    assert all(pd.Timestamp(c).is_month_end for c in week1.training_cutoffs)
    assert month_ends(pd.Timestamp("2024-01-15").date(), pd.Timestamp("2024-12-31").date(), 3) == [
        pd.Timestamp(d).date() for d in ("2024-03-31", "2024-06-30", "2024-09-30", "2024-12-31")]


def test_backtest_is_strict_and_says_when_the_horizon_is_shortened():
    retail = plan_snapshots("2009-12-01", "2011-12-09", 365)  # two years: no strict 365-day backtest fits
    assert retail.backtest.horizon_days == 180 and len(retail.backtest.origins) == 3
    assert "too short for a strict backtest at 365 days" in retail.backtest.note
    for origin, cutoffs in retail.backtest.training_cutoffs.items():
        assert cutoffs and all(pd.Timestamp(c) + pd.Timedelta(days=180) <= pd.Timestamp(origin) for c in cutoffs)
        assert pd.Timestamp(origin) + pd.Timedelta(days=180) <= pd.Timestamp("2011-12-09")
    # every training cutoff has at least min_history_days of shop history before it
    assert min(pd.Timestamp(c) for c in retail.training_cutoffs) >= pd.Timestamp("2009-12-01") + pd.Timedelta(days=90)
    three_years = plan_snapshots("2023-01-01", "2025-12-31", 365)
    assert three_years.backtest.horizon_days == 365 and three_years.backtest.note == ""


def test_weighted_metrics_with_unit_weights_are_the_plain_metrics():
    rng = np.random.default_rng(1)
    y = rng.gamma(0.5, 100, 200) * (rng.random(200) < 0.6)
    p = y * rng.uniform(0.5, 1.5, 200) + rng.uniform(0, 20, 200)
    got = weighted_metrics(y, p, np.ones((1, 200)))
    assert got["mae"][0] == pytest.approx(mae(y, p))
    assert got["normalized_gini"][0] == pytest.approx(normalized_gini(y, p))
    assert got["calibration_ratio"][0] == pytest.approx(calibration_ratio(y, p))
    # integer weights = repeating rows
    w = rng.integers(0, 3, 200)
    repeated = weighted_metrics(np.repeat(y, w), np.repeat(p, w), np.ones((1, w.sum())))
    assert weighted_metrics(y, p, w[None, :].astype(float))["mae"][0] == pytest.approx(repeated["mae"][0])


def backtest_of(predictions: dict, actual, customers=None, origins=("2024-01-31", "2024-04-30")) -> BacktestResult:
    n = len(actual)
    rows = pd.DataFrame({"origin": np.repeat(list(origins), n // len(origins)),
                         "customer_id": customers if customers is not None else [f"c{i % (n // 2)}" for i in range(n)],
                         "actual": actual})
    result = BacktestResult(90, list(origins), "", rows, predictions)
    evaluate(result, resamples=300, seed=0, reference=tuple(name for name in predictions if name != "candidate"))
    return result


@pytest.fixture(scope="module")
def shop():
    rng = np.random.default_rng(7)
    value = rng.gamma(0.6, 200, 2000)
    actual = rng.poisson(value / 50) * 50.0
    return value, actual


def test_paired_interval_excludes_zero_for_a_real_difference_and_is_zero_for_identical_models(shop):
    value, actual = shop
    good, noisy = value, value * np.random.default_rng(3).lognormal(0, 1.2, len(value))
    result = backtest_of({"last_period": noisy, "candidate": good, "champion": good.copy()}, actual)
    low, high = result.ci["candidate"]["mae_diff_vs_last_period"]
    assert high < 0  # better, and the interval says so
    assert result.ci["candidate"]["normalized_gini_diff_vs_last_period"][0] > 0
    # a model identical to the reference: every resample gives a zero difference
    same = backtest_of({"last_period": good, "candidate": good.copy()}, actual)
    assert same.ci["candidate"]["mae_diff_vs_last_period"] == [0.0, 0.0]


def test_bootstrap_resamples_customers_not_rows(shop):
    """Two origins of the same customers: resampling rows would treat them as independent and give a
    narrower interval than resampling customers."""
    value, actual = shop
    half = len(value) // 2
    actual2 = np.concatenate([actual[:half], actual[:half]])
    preds = {"last_period": np.concatenate([value[:half]] * 2) * 1.3, "candidate": np.concatenate([value[:half]] * 2)}
    rows = backtest_of(preds, actual2, [f"c{i}" for i in range(half)] * 2).rows
    by_customer = paired_bootstrap(rows, preds, resamples=300, resample_origins=False)
    by_row = paired_bootstrap(rows.assign(customer_id=[f"r{i}" for i in range(2 * half)]), preds, resamples=300,
                              resample_origins=False)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_customer["candidate"]["mae"]) > 1.2 * width(by_row["candidate"]["mae"])


def rows_with_slices(n, rng):
    return np.where(rng.random(n) < 0.5, "UK", "DE")


def gate(results, name):
    return next(r for r in results if r.gate == name)


def test_first_model_that_loses_to_last_years_spend_fails_and_one_that_wins_passes(shop):
    value, actual = shop
    rng = np.random.default_rng(5)
    baseline = value * rng.lognormal(0, 0.6, len(value))
    worse = value * rng.lognormal(0, 1.5, len(value)) + 300
    losing = backtest_of({"last_period": baseline, "candidate": worse}, actual)
    results = evaluate_gates(losing, has_champion=False)
    assert not gate(results, "beats_baseline").passed and not gates_passed(results)
    winning = backtest_of({"last_period": baseline, "candidate": value}, actual)
    results = evaluate_gates(winning, has_champion=False)
    assert gate(results, "beats_baseline").passed and gates_passed(results)
    assert "better on deviance" in gate(results, "beats_baseline").detail


def test_calibration_band_fires_on_a_model_that_doubles_everything(shop):
    value, actual = shop
    doubled = backtest_of({"last_period": value * 1.1, "candidate": value * 2}, actual)
    assert not gate(evaluate_gates(doubled, False), "calibration").passed
    assert gate(evaluate_gates(backtest_of({"last_period": value * 1.1, "candidate": value}, actual), False),
                "calibration").passed


def test_challenger_not_worse_than_the_champion_passes_and_a_worse_one_fails(shop):
    value, actual = shop
    rng = np.random.default_rng(9)
    noisy = value * rng.lognormal(0, 0.8, len(value))
    tie = backtest_of({"last_period": noisy, "candidate": value * 1.001, "champion": value}, actual)
    assert gate(evaluate_gates(tie, has_champion=True), "beats_champion").passed
    worse = backtest_of({"last_period": noisy, "candidate": noisy * 0.9, "champion": value}, actual)
    assert not gate(evaluate_gates(worse, has_champion=True), "beats_champion").passed
    # the same configuration refit on the same cutoffs: compared in the bootstrap (a measured tie), not declared
    same = backtest_of({"last_period": noisy, "candidate": value, "champion": value.copy()}, actual)
    result = gate(evaluate_gates(same, has_champion=True, same_configuration=True), "beats_champion")
    assert result.passed and "tie on deviance" in result.detail and "[95% +0.00, +0.00]" in result.detail
    # a champion missing from the backtest is not a tie: the gate cannot pass
    missing = backtest_of({"last_period": noisy, "candidate": value}, actual)
    assert not gate(evaluate_gates(missing, has_champion=True), "beats_champion").passed


def test_a_worse_challenger_fails_on_a_real_interval_not_a_nan_one(shop):
    """The champion is in the paired bootstrap: a challenger whose MAE is 40% worse gets a finite interval
    above zero and fails (before, the champion's side was missing, the interval was NaN and read as a tie)."""
    value, actual = shop
    rng = np.random.default_rng(4)
    worse = backtest_of({"last_period": value * rng.lognormal(0, 1.0, len(value)),
                         "candidate": value * rng.lognormal(0, 1.2, len(value)), "champion": value}, actual)
    champion_gate = gate(evaluate_gates(worse, has_champion=True), "beats_champion")
    low, high = champion_gate.values["deviance_difference"]["ci"]
    assert np.isfinite(low) and np.isfinite(high) and low > 0
    assert not champion_gate.passed and "worse on deviance" in champion_gate.detail
    # an interval that cannot be computed fails, it is never a tie
    worse.ci["candidate"]["deviance_diff_vs_champion"] = [np.nan, np.nan]
    assert not gate(evaluate_gates(worse, has_champion=True), "beats_champion").passed


def test_calibration_is_judged_against_what_would_be_served_instead(shop):
    """The seasonal, growing shop's case: the model is better on deviance and Gini but 25% low in level,
    while last year's spend, which would be served instead, is 45% high: the model is served. A model
    25% low beside a fallback 10% high is not."""
    value, actual = shop
    rng = np.random.default_rng(12)
    noisy = value * rng.lognormal(0, 0.9, len(value))
    low_model = value * 0.75
    served = backtest_of({"last_period": noisy * 1.45 * value.sum() / noisy.sum(), "candidate": low_model}, actual)
    results = evaluate_gates(served, has_champion=False)
    calibration = gate(results, "calibration")
    assert served.metrics["candidate"]["calibration_ratio"] < 0.8  # outside the band
    assert calibration.passed and "no further off than last year's spend" in calibration.detail
    assert gates_passed(results), [r.detail for r in results if not r.passed]
    rejected = backtest_of({"last_period": noisy * 1.1 * value.sum() / noisy.sum(), "candidate": low_model}, actual)
    calibration = gate(evaluate_gates(rejected, has_champion=False), "calibration")
    assert not calibration.passed and "further off than last year's spend" in calibration.detail


def test_a_candidate_losing_at_the_latest_origin_fails_and_one_winning_there_passes(shop):
    """Better on average over the origins but worse at the latest one: the latest-origin gate fails; better at
    every origin: it passes."""
    value, actual = shop
    rng = np.random.default_rng(8)
    baseline = value * rng.lognormal(0, 0.7, len(value))
    half = len(value) // 2
    late_noise = np.concatenate([np.ones(half), rng.lognormal(0, 2.0, half) * 3])
    losing_late = backtest_of({"last_period": baseline, "candidate": value * late_noise}, actual)
    assert losing_late.per_origin["candidate"]["2024-01-31"]["deviance"] < \
        losing_late.per_origin["last_period"]["2024-01-31"]["deviance"]
    latest = gate(evaluate_gates(losing_late, has_champion=False), "latest_origin")
    assert not latest.passed and "at 2024-04-30" in latest.detail
    winning = backtest_of({"last_period": baseline, "candidate": value}, actual)
    assert gate(evaluate_gates(winning, has_champion=False), "latest_origin").passed


def test_origin_resampling_widens_intervals_when_origins_disagree(shop):
    """Two origins where the candidate is 40% high at one and right at the other: resampling the origins
    too gives a wider calibration interval than resampling customers alone."""
    value, actual = shop
    half = len(value) // 2
    candidate = np.concatenate([value[:half] * 1.4, value[half:]])
    rows = backtest_of({"last_period": value, "candidate": candidate}, actual).rows
    with_origins = paired_bootstrap(rows, {"last_period": value, "candidate": candidate}, resamples=300)
    customers_only = paired_bootstrap(rows, {"last_period": value, "candidate": candidate}, resamples=300,
                                      resample_origins=False)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(with_origins["candidate"]["calibration_ratio"]) > 2 * width(customers_only["candidate"]["calibration_ratio"])


def test_fallback_is_the_best_label_free_model_and_a_tie_keeps_last_years_spend(shop):
    value, actual = shop
    rng = np.random.default_rng(2)
    baseline = value * rng.lognormal(0, 1.0, len(value))
    better = backtest_of({"last_period": baseline, "candidate": value, "bgnbd_gg": value * 1.05,
                          "last_period_scaled": baseline * 0.9}, actual)
    name, why = choose_fallback(better, ("last_period", "last_period_scaled", "bgnbd_gg"))
    assert name == "bgnbd_gg" and "lowest Poisson deviance" in why
    tie = backtest_of({"last_period": baseline, "candidate": value, "bgnbd_gg": baseline * 1.0001}, actual)
    name, why = choose_fallback(tie, ("last_period", "bgnbd_gg"))
    assert name == "last_period" and "no label-free model beat it" in why


def test_fairness_is_judged_on_calibration_not_on_mean_predictions(shop):
    """Slices whose customers really spend less get lower predictions: an accurate model passes even
    though its mean prediction differs 4x between slices; a model mis-calibrated on one slice fails."""
    value, actual = shop
    slices = np.where(np.arange(len(value)) % 2 == 0, "UK", "DE")
    factor = np.where(slices == "UK", 1.0, 0.25)
    scaled_actual, scaled_value = actual * factor, value * factor
    accurate = backtest_of({"last_period": scaled_value * 1.2, "candidate": scaled_value}, scaled_actual)
    accurate.rows["country"] = slices
    config = GateConfig(slice_columns=("country",), min_slice_customers=100)
    assert gate(evaluate_gates(accurate, False, config=config), "fairness_country").passed
    skewed = backtest_of({"last_period": scaled_value, "candidate": np.where(slices == "DE", 3 * scaled_value,
                                                                              scaled_value)}, scaled_actual)
    skewed.rows["country"] = slices
    failed = gate(evaluate_gates(skewed, False, config=config), "fairness_country")
    assert not failed.passed and "DE: calibration" in failed.detail


def test_a_slice_outside_the_band_passes_only_when_last_years_spend_is_further_off_and_says_so(shop):
    """A slice predicted at 0.4 of its spend (relative to the model's overall level, well outside the band),
    where last year's spend is off further: a slice the data make hard, the gate passes and its detail shows
    both relative ratios; the same slice with last year's spend exact there fails."""
    value, actual = shop
    slices = np.where(np.arange(len(value)) % 2 == 0, "UK", "DE")
    config = GateConfig(slice_columns=("country",), min_slice_customers=100)
    skewed = np.where(slices == "DE", 0.4 * value, value)

    def fairness_with_baseline(factor):
        backtest = backtest_of({"last_period": np.where(slices == "DE", factor * value, value),
                                "candidate": skewed}, actual)
        backtest.rows["country"] = slices
        return gate(evaluate_gates(backtest, False, config=config), "fairness_country")

    hard = fairness_with_baseline(0.2)
    de = hard.values["slices"]["DE"]["calibration_ratio"] / hard.values["overall_calibration"]
    de_baseline = (hard.values["baseline_slices"]["DE"]["calibration_ratio"]
                   / hard.values["alternative_overall_calibration"])
    assert de < 0.67 and de_baseline < de
    assert hard.passed, hard.detail
    assert f"DE cal {de:.2f} (outside 0.67-1.5; last year's spend {de_baseline:.2f})" in hard.detail
    assert "UK cal" in hard.detail and hard.detail.count("(outside") == 1  # only the slice outside the band
    assert "within 0.67-1.5 and Gini floor 0.2, or no further off than last year's spend)" in hard.detail
    easy = fairness_with_baseline(1.0)
    assert not easy.passed and "DE: calibration" in easy.detail


def test_a_level_error_common_to_every_slice_is_not_a_fairness_failure(shop):
    """The seasonal shop's case: the model is 0.7x in every country (its overall level, judged by the
    calibration gate) while last year's spend is 1.3x: no slice is treated differently, the slice gate
    passes; one country at 0.7x of that level fails it."""
    value, actual = shop
    slices = np.where(np.arange(len(value)) % 3 == 0, "DE", "UK")
    config = GateConfig(slice_columns=("country",), min_slice_customers=100)
    rng = np.random.default_rng(1)
    baseline = value * rng.lognormal(0, 0.8, len(value)) * 1.3
    common = backtest_of({"last_period": baseline, "candidate": value * 0.7}, actual)
    common.rows["country"] = slices
    assert gate(evaluate_gates(common, False, config=config), "fairness_country").passed
    uneven = backtest_of({"last_period": baseline, "candidate": np.where(slices == "DE", 0.4, 0.8) * value}, actual)
    uneven.rows["country"] = slices
    failed = gate(evaluate_gates(uneven, False, config=config), "fairness_country")
    assert not failed.passed and "DE: calibration" in failed.detail


def test_type_choice_picks_each_type_where_it_is_better_and_keeps_the_current_one_on_a_tie(shop):
    from models_ml.training import choose_type

    value, actual = shop
    rng = np.random.default_rng(6)
    noisy = value * rng.lognormal(0, 1.0, len(value))
    for better, worse in (("xgboost", "xgboost_offset"), ("xgboost_offset", "xgboost")):
        backtest = backtest_of({"last_period": noisy, better: value, worse: noisy * 0.8}, actual)
        choice = choose_type(backtest, ["xgboost_offset", "xgboost"], keep="xgboost_offset")
        assert choice["chosen"] == better and choice["runner_up"] == worse
    tie = backtest_of({"last_period": noisy, "xgboost": value * 1.0001, "xgboost_offset": value}, actual)
    choice = choose_type(tie, ["xgboost_offset", "xgboost"], keep="xgboost_offset")
    assert choice["chosen"] == "xgboost_offset" and "kept" in choice["why"]
    # a type failing a gate is not kept, even when the other is no better on deviance
    choice = choose_type(tie, ["xgboost_offset", "xgboost"], keep="xgboost_offset",
                         failed_gates={"xgboost_offset": ["calibration"], "xgboost": []})
    assert choice["chosen"] == "xgboost" and "xgboost_offset failed calibration" in choice["why"]


def test_a_cutoff_must_lie_between_the_first_order_and_a_week_after_the_last():
    from clv.snapshots import MAX_DAYS_PAST_LAST_ORDER, CutoffError, check_cutoff

    first, last, today = date(2024, 1, 1), date(2024, 6, 30), date(2024, 7, 31)
    for fine in (first, last, last + timedelta(days=MAX_DAYS_PAST_LAST_ORDER)):  # a quiet weekend is fine
        check_cutoff(fine, first, last, today)
    refused = {date(2024, 8, 1): "in the future (today is 2024-07-31)",
               date(2023, 12, 31): "before the first landed order (2024-01-01)",
               last + timedelta(days=MAX_DAYS_PAST_LAST_ORDER + 1): "8 days after the last landed order (2024-06-30)"}
    for cutoff, phrase in refused.items():
        with pytest.raises(CutoffError, match=re.escape(phrase)):
            check_cutoff(cutoff, first, last, today)
