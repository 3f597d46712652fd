"""PSI and KS against values worked out by hand, and against scipy."""

from __future__ import annotations

from datetime import date as date_

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from models_ml.drift import drift_report, ks_statistic, psi, status


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


def test_proxy_rank_correlation_waits_for_thirty_days():
    import duckdb

    from clv.monitoring import WarehouseReader, proxy_rank_correlation

    con = duckdb.connect()
    con.execute("""create table int_orders as select * from (values
        ('a', date '2024-01-05', 100.0, 0.0), ('b', date '2024-01-10', 50.0, 0.0), ('c', date '2024-01-20', 10.0, 0.0),
        ('a', date '2024-03-01', 1.0, 0.0)) t(customer_id, order_date, purchase_value, returned_value)""")
    scores = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "predicted_clv_12m": [9.0, 5.0, 1.0, 0.0]})
    reader = WarehouseReader(connection=con)
    assert proxy_rank_correlation(reader, date_(2024, 1, 1), scores) == pytest.approx(1.0)  # a > b > c > d
    assert proxy_rank_correlation(reader, date_(2024, 2, 15), scores) is None  # 30 days not yet observed
