"""PSI and KS against values worked out by hand, and against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from models_ml.drift import drift_report, ks_statistic, psi, status

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_psi_by_hand():
    baseline = np.arange(1, 11, dtype=float)  # quartile edges 3.25, 5.5, 7.75 -> bins of 3, 2, 2, 3
    current = np.array([1.0] * 6 + [10.0] * 4)  # shares 0.6, 0, 0, 0.4
    expected = (0.6 - 0.3) * np.log(0.6 / 0.3) + 2 * (1e-4 - 0.2) * np.log(1e-4 / 0.2) + (0.4 - 0.3) * np.log(0.4 / 0.3)
    assert psi(baseline, current, bins=4) == pytest.approx(expected)
    assert psi(baseline, baseline, bins=4) == 0.0


def test_psi_counts_missing_values_as_their_own_bin():
    baseline = np.arange(100, dtype=float)
    current = np.where(np.arange(100) < 50, np.nan, np.arange(100, dtype=float))
    assert psi(baseline, current) > 0.25


def test_ks_matches_scipy_and_ignores_missing():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(0.3, 1, size=400)
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic)
    assert ks_statistic(np.append(a, np.nan), b) == pytest.approx(ks_2samp(a, b).statistic)


def test_status_thresholds():
    assert [status(v) for v in (0.05, 0.1, 0.2, 0.25, 0.26, float("nan"))] == ["ok", "warn", "warn", "warn", "alert", "ok"]


def test_report_names_the_drifted_feature():
    rng = np.random.default_rng(1)
    baseline = pd.DataFrame({"stable": rng.normal(size=2000), "shifted": rng.normal(size=2000)})
    current = pd.DataFrame({"stable": rng.normal(size=2000), "shifted": rng.normal(2.0, 1, size=2000)})
    report = drift_report(baseline, current, ["stable", "shifted"], baseline["stable"], current["stable"])
    assert report["features"]["stable"]["status"] == "ok"
    assert report["features"]["shifted"]["status"] == "alert" and report["drifted_features"] == ["shifted"]
    assert report["status"] == "alert" and report["prediction"]["status"] == "ok"


def history_warehouse():
    import duckdb

    con = duckdb.connect()
    con.execute("""create table int_orders as select * from (values
        ('a', date '2024-01-05', 100.0, 0.0), ('b', date '2024-01-10', 50.0, 0.0), ('c', date '2024-01-20', 10.0, 0.0),
        ('a', date '2024-03-01', 1.0, 0.0)) t(customer_id, order_date, purchase_value, returned_value)""")
    con.execute("""create table clv_scores_history as select * from (values
        ('a', date '2024-01-01', 9.0, 'clv_xgboost', '1'), ('b', date '2024-01-01', 5.0, 'clv_xgboost', '1'),
        ('c', date '2024-01-01', 1.0, 'clv_xgboost', '1'), ('d', date '2024-01-01', 0.0, 'clv_xgboost', '1'),
        ('a', date '2024-02-15', 9.0, 'clv_xgboost', '1'))
        t(customer_id, cutoff_date, predicted_clv_12m, model_name, model_version)""")
    return con


def test_matured_runs_are_measured_once_their_window_has_passed():
    from clv.monitoring import WarehouseReader, matured_performance

    rows = matured_performance(WarehouseReader(connection=history_warehouse()), horizon_days=365)
    # the 2024-01-01 run has 30 days of outcomes (to 2024-01-31): a > b > c > d, rank correlation 1;
    # the 2024-02-15 run and every 365-day window have not matured by the last order day (2024-03-01)
    assert [(str(r["cutoff_date"]), r["window_days"]) for r in rows] == [("2024-01-01", 30)]
    assert rows[0]["spearman"] == pytest.approx(1.0) and rows[0]["customers"] == 4
    # actual 160 over 30 days; predicted 15 a year -> 15 * 30 / 365 for the window
    assert rows[0]["calibration_ratio"] == pytest.approx(15 * 30 / 365 / 160)
    again = matured_performance(WarehouseReader(connection=history_warehouse()), 365,
                                done={("2024-01-01", "clv_xgboost", "1", 30)})
    assert again == []  # measured once, kept in performance_history


def test_performance_trigger_fires_on_a_real_drop_and_stays_quiet_otherwise(monkeypatch):
    from clv import monitoring

    monkeypatch.setattr(monitoring.registry, "version_tags", lambda name, version: {"backtest_normalized_gini": "0.80"})

    def history(full_gini, full_calibration, proxies):
        rows = [{"cutoff_date": f"2024-0{i + 1}-01", "model_name": "m", "model_version": "1", "window_days": 30,
                 "spearman": s, "normalized_gini": 0.5, "calibration_ratio": 1.0} for i, s in enumerate(proxies)]
        rows.append({"cutoff_date": "2024-01-01", "model_name": "m", "model_version": "1", "window_days": 365,
                     "spearman": 0.5, "normalized_gini": full_gini, "calibration_ratio": full_calibration})
        return pd.DataFrame(rows)

    quiet = monitoring.performance_status(history(0.78, 1.05, [0.50, 0.52, 0.49]), "m", "1")
    assert not quiet["degraded"] and quiet["reasons"] == []
    gini_drop = monitoring.performance_status(history(0.62, 1.05, [0.50, 0.52, 0.49]), "m", "1")
    assert gini_drop["degraded"] and "normalized Gini 0.620" in gini_drop["reasons"][0]
    miscalibrated = monitoring.performance_status(history(0.78, 1.9, [0.50, 0.52, 0.49]), "m", "1")
    assert miscalibrated["degraded"] and "calibration 1.900" in miscalibrated["reasons"][0]
    proxy_drop = monitoring.performance_status(history(0.78, 1.0, [0.50, 0.52, 0.51, 0.30]), "m", "1")
    assert proxy_drop["degraded"] and "30-day rank correlation 0.300" in proxy_drop["reasons"][0]
    assert not monitoring.performance_status(history(0.5, 3.0, [0.5]), "m", None)["degraded"]  # no champion


def test_activity_signals_alert_on_a_doubled_rate_or_dearer_orders_and_not_on_noise():
    from clv.monitoring import activity_drift

    rng = np.random.default_rng(0)

    def week(n, scale=1.0):
        return pd.DataFrame({"purchase_value": rng.gamma(4, 15 * scale, n)})

    same = activity_drift(week(800), 20000, week(820), 20300)
    assert {s["status"] for s in same.values()} == {"ok"}
    doubled = activity_drift(week(800), 20000, week(1650), 20300)
    assert doubled["orders_per_customer_7d"]["status"] == "alert" and doubled["order_value_7d"]["status"] == "ok"
    dearer = activity_drift(week(800), 20000, week(800, 1.5), 20300)
    assert dearer["order_value_7d"]["status"] == "alert" and dearer["order_value_7d"]["ratio"] == pytest.approx(1.5, rel=0.1)


def test_a_seasonal_model_crossing_a_month_is_not_drift_but_a_changed_population_is():
    """A model with a month effect scores the same customers differently in January than in December. The
    monitor re-scores the champion's baseline in the current month: the same population is quiet, a
    population that spends three times as much still alerts."""
    from clv.monitoring import baseline_predictions_in_calendar
    from models_ml.drift import drift_report
    from models_ml.base import features_and_target
    from models_ml.gradient_boosting import XGBoostCLV

    rng = np.random.default_rng(3)
    n = 4000
    spend = rng.gamma(1.2, 100, n) * (rng.random(n) < 0.6)
    train = pd.DataFrame({"customer_id": np.arange(2 * n).astype(str),
                          "cutoff_date": pd.to_datetime("2024-12-31"),
                          "revenue_sum_365d": np.tile(spend, 2), "orders_count_365d": np.tile(spend > 0, 2) * 3.0,
                          "cutoff_month": np.repeat([12, 1], n)})
    train["future_revenue"] = train["revenue_sum_365d"] * np.where(train["cutoff_month"] == 12, 1.0, 0.5) \
        * rng.gamma(4, 0.25, 2 * n)
    model = XGBoostCLV().fit(*features_and_target(train))
    december = train[train["cutoff_month"] == 12].drop(columns="future_revenue").reset_index(drop=True)
    baseline = december[model.required_columns()].assign(predicted=model.predict(december))
    january = december.assign(cutoff_month=1)
    current = january.assign(predicted_clv_12m=model.predict(january))
    features = ["revenue_sum_365d", "orders_count_365d"]

    raw = drift_report(baseline, current, features, baseline["predicted"], current["predicted_clv_12m"])
    assert raw["prediction"]["psi"] > 0.1 and raw["status"] != "ok"  # without the adjustment: a false alarm
    expected = baseline_predictions_in_calendar(model, baseline, current)
    quiet = drift_report(baseline, current, features, expected, current["predicted_clv_12m"])
    assert quiet["prediction"]["psi"] < 0.1 and quiet["status"] == "ok"

    richer = january.assign(revenue_sum_365d=january["revenue_sum_365d"] * 3)
    richer["predicted_clv_12m"] = model.predict(richer)
    shifted = drift_report(baseline, richer, features, baseline_predictions_in_calendar(model, baseline, richer),
                           richer["predicted_clv_12m"])
    assert shifted["status"] == "alert" and shifted["prediction"]["psi"] > 0.25
    # the same month: the logged predictions are used as they are
    assert baseline_predictions_in_calendar(model, baseline, december) is baseline["predicted"]
