"""PSI and KS against values worked out by hand, and against scipy."""

from __future__ import annotations

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
