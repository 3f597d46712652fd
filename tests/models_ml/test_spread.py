"""Per-customer predictive distributions (models_ml/spread.py) and the base's forecast
(models_ml/base_forecast.py), checked on simulated shops whose true distribution is known: intervals
that hold when the checked cutoff resembles the others, and a check that says so when it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from models_ml import base_forecast
from models_ml.gates import CANDIDATE, coverage
from models_ml.protocol import BacktestResult
from models_ml.scoring import discount_factor, discounted_margin_value
from models_ml.spread import (
    LEVELS,
    Spread,
    coverage_terms,
    crps,
    distribution_columns,
    evaluate_spread,
    fit_on_backtest,
    quantiles_of,
)

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def customers(n: int, level: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(predicted mean, actual) for a shop where the prediction is the true mean times 1 / `level`: each
    customer buys with probability 1 - exp(-mean / 200), and then spends a gamma amount."""
    rng = np.random.default_rng(seed)
    mean = rng.gamma(0.6, 300.0, n)
    p_buy = 1 - np.exp(-mean / 200.0)
    bought = rng.random(n) < p_buy
    actual = np.where(bought, rng.gamma(2.0, mean * level / np.maximum(p_buy, 1e-9) / 2.0), 0.0)
    return mean, actual


def backtest_rows(levels, n: int = 4_000) -> tuple[pd.DataFrame, np.ndarray]:
    parts, predicted = [], []
    for i, level in enumerate(levels):
        mean, actual = customers(n, level, seed=i)
        parts.append(pd.DataFrame({"origin": f"2024-0{i + 1}-01", "customer_id": [f"c{j}" for j in range(n)],
                                   "actual": actual, "country": np.where(np.arange(n) % 3 == 0, "DE", "UK")}))
        predicted.append(mean)
    return pd.concat(parts, ignore_index=True), np.concatenate(predicted)


def test_intervals_hold_when_the_checked_origin_resembles_the_others():
    rows, predicted = backtest_rows([1.0, 1.0, 1.0])
    checked = evaluate_spread(rows, predicted, 180)
    assert 0.77 <= checked["overall"]["coverage_80"] <= 0.83
    assert all(0.75 <= o["coverage_80"] <= 0.85 for o in checked["per_origin"].values())
    assert set(checked["by_tier"]) == {"high", "medium", "low"} and set(checked["by_slice"]["country"]) == {"DE", "UK"}
    assert len(checked["by_decile"]) == 10
    # P(no purchase) as often as it happens
    assert abs(checked["overall"]["p_no_purchase"] - checked["overall"]["share_no_purchase"]) < 0.02


def test_an_origin_unlike_the_others_shows_as_lost_coverage():
    rows, predicted = backtest_rows([1.0, 1.0, 3.0])  # the last origin spends three times what was predicted
    checked = evaluate_spread(rows, predicted, 180)
    assert checked["per_origin"]["2024-03-01"]["coverage_80"] < 0.75
    assert checked["per_origin"]["2024-01-01"]["coverage_80"] > checked["per_origin"]["2024-03-01"]["coverage_80"]


def test_a_customer_who_buys_nothing_counts_by_the_share_of_the_point_mass_inside_the_interval():
    spread = Spread(365, [0.0, 1.0], [1.0, 0.5], [[0.0] * len(LEVELS), list(np.linspace(0.5, 2.0, len(LEVELS)))])
    # P(no purchase) 0.5: an actual of 0 has its randomized PIT uniform on [0, 0.5]; [0.1, 0.5] lies inside
    assert coverage_terms(spread, [100.0], [0.0])[0] == pytest.approx(0.8)
    assert coverage_terms(spread, [100.0], [1_000.0])[0] == 0.0  # far above the 90th percentile
    assert coverage_terms(spread, [100.0], [120.0])[0] == 1.0
    columns = distribution_columns(spread, [100.0])
    assert columns.loc[0, "p_no_purchase"] == 0.5 and columns.loc[0, "predicted_clv_p10"] == 0.0
    assert columns.loc[0, "predicted_clv_p50"] == 0.0  # half buy nothing: the median is 0
    assert columns.loc[0, "predicted_clv_p90"] == pytest.approx(100 * np.interp(0.8, LEVELS, np.linspace(0.5, 2, len(LEVELS))))


def test_published_percentiles_are_ordered_and_scale_with_the_prediction():
    rows, predicted = backtest_rows([1.0, 1.0])
    spread = fit_on_backtest(rows, predicted, 180)
    mean, _ = customers(3_000, seed=9)
    columns = distribution_columns(spread, mean)
    assert (columns["predicted_clv_p10"] <= columns["predicted_clv_p50"]).all()
    assert (columns["predicted_clv_p50"] <= columns["predicted_clv_p90"]).all()
    assert ((columns["p_no_purchase"] >= 0) & (columns["p_no_purchase"] <= 1)).all()
    top = np.argsort(mean)[-200:]
    bottom = np.argsort(mean)[200:400]
    assert columns["predicted_clv_p90"].to_numpy()[top].mean() > columns["predicted_clv_p90"].to_numpy()[bottom].mean()
    assert columns["p_no_purchase"].to_numpy()[top].mean() < columns["p_no_purchase"].to_numpy()[bottom].mean()


def test_crps_prefers_the_distribution_learned_on_the_right_level():
    rows, predicted = backtest_rows([1.0])
    right = fit_on_backtest(rows, predicted, 180)
    wrong_rows, wrong_predicted = backtest_rows([0.3])
    wrong = fit_on_backtest(wrong_rows, wrong_predicted, 180)
    mean, actual = customers(4_000, seed=11)
    assert crps(right, mean, actual).mean() < crps(wrong, mean, actual).mean()
    assert quantiles_of(right, mean, (0.9,)).mean() > quantiles_of(wrong, mean, (0.9,)).mean()


def gated(candidate: float, alternative: float | None) -> bool:
    distribution = {CANDIDATE: {"overall": {"coverage_80": candidate}, "per_origin": {"2024-01-01": {"coverage_80": candidate}}}}
    if alternative is not None:
        distribution["last_period"] = {"overall": {"coverage_80": alternative}}
    result = BacktestResult(180, ["2024-01-01"], "", pd.DataFrame(), distribution=distribution)
    return coverage(result, (0.75, 0.85), "last_period").passed


def test_the_coverage_gate_refuses_intervals_that_do_not_hold_and_passes_those_that_do():
    assert gated(0.80, 0.80) and gated(0.76, None)
    assert not gated(0.62, 0.79)  # the alternative's intervals would hold: the candidate's are refused
    assert not gated(0.93, 0.81) and not gated(0.62, None)
    assert gated(0.62, 0.45)  # outside the band, but the alternative is further off: not served something worse


def test_the_discount_factor_is_the_present_value_of_revenue_spread_over_the_horizon():
    for rate, days in ((0.08, 365), (0.12, 730), (0.3, 180)):
        years = days / 365
        exact, _ = integrate.quad(lambda t: (1 + rate) ** -t, 0, years)
        assert discount_factor(days, rate) == pytest.approx(exact / years, rel=1e-9)
    assert discount_factor(365, 0.0) == 1.0 and discount_factor(365, None) == 1.0
    value = discounted_margin_value([100.0, 0.0], 365, 0.4, 0.1)
    assert value == pytest.approx([100 * 0.4 * (0.1 / 1.1) / np.log(1.1), 0.0])
    assert discounted_margin_value([100.0], 365, None, None) is None


@pytest.mark.parametrize("values, error", [
    ({"margin_rate": "lots"}, "margin_rate must be a number in (0, 1], got 'lots'"),
    ({"margin_rate": 1.5}, "margin_rate must be a number in (0, 1]"),
    ({"margin_rate": 0.3, "annual_discount_rate": -0.1}, "annual_discount_rate must be a number in [0, 1)"),
    ({"annual_discount_rate": 0.1}, "annual_discount_rate needs margin_rate"),
])
def test_margin_and_discount_settings_are_refused_by_name_when_wrong(tmp_path, values, error):
    import yaml

    from clv.settings import SettingsError, load_settings

    path = tmp_path / "clv-settings.yml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert error in str(raised.value) and str(path) in str(raised.value)
    path.write_text(yaml.safe_dump({"margin_rate": 0.3, "annual_discount_rate": 0.1}))
    assert load_settings(path).margin_rate == 0.3


def simulated_origins(shock_sd: float, origins: int = 30, n: int = 3_000) -> list[dict]:
    """origin_totals of a shop whose whole-base level moves from origin to origin (log-normal shocks)."""
    rng = np.random.default_rng(5)
    parts, predicted = [], []
    for i in range(origins):
        mean, actual = customers(n, float(np.exp(rng.normal(0, shock_sd))), seed=100 + i)
        parts.append(pd.DataFrame({"origin": f"o{i:02d}", "actual": actual,
                                   "country": np.where(np.arange(n) % 4 == 0, "DE", "UK")}))
        predicted.append(mean)
    rows, predicted = pd.concat(parts, ignore_index=True), np.concatenate(predicted)
    spread = fit_on_backtest(rows, predicted, 180)
    return base_forecast.origin_totals(rows, predicted, spread)


def test_the_base_interval_holds_the_realised_total_when_the_whole_shop_moves():
    moving = base_forecast.backtest_forecast(simulated_origins(0.25))
    assert 0.65 <= moving["held_share_all"] <= 0.97  # about 80% of origins, each judged by the others
    steady = base_forecast.backtest_forecast(simulated_origins(0.0))
    # customers' own randomness alone makes a narrow interval; whole-shop swings widen it
    assert steady["median_width_share_all"] < 0.5 * moving["median_width_share_all"]
    assert steady["held_share_all"] >= 0.65


def test_the_forecast_table_has_one_row_per_scope_and_no_interval_without_a_distribution():
    history = simulated_origins(0.1, origins=4, n=1_000)
    rows, predicted = backtest_rows([1.0, 1.0], n=1_000)
    spread = fit_on_backtest(rows, predicted, 180)
    mean, _ = customers(1_000, seed=3)
    frame = pd.DataFrame({"country": np.where(np.arange(1_000) % 4 == 0, "DE", "UK"),
                          "clv_tier": np.where(mean > np.quantile(mean, 0.8), "high", "low")})
    table = base_forecast.forecast_table(frame, mean, spread, history, "2024-06-30")
    assert list(zip(table["scope"], table["scope_value"])) == [("all", "all"), ("tier", "high"), ("tier", "low"),
                                                             ("country", "DE"), ("country", "UK")]
    whole = table.iloc[0]
    assert whole["predicted_revenue"] == pytest.approx(mean.sum())
    assert whole["revenue_p10"] < whole["predicted_revenue"] < whole["revenue_p90"]
    assert table.loc[table["scope"] == "country", "predicted_revenue"].sum() == pytest.approx(mean.sum())
    bare = base_forecast.forecast_table(frame, mean, None, None, "2024-06-30")
    assert bare["revenue_p10"].isna().all() and bare["interval_note"].str.contains("no predictive distribution").all()
