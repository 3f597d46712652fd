"""Drift between a baseline sample (what the champion was trained on) and the current scoring population:
PSI with bins from the baseline's quantiles, and the two-sample Kolmogorov-Smirnov statistic."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

WARN_PSI, ALERT_PSI = 0.1, 0.25
EPSILON = 1e-4  # share given to an empty bin, so the log stays finite


def quantile_edges(baseline, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the baseline's quantiles (duplicates merged, so ties make fewer bins)."""
    values = np.asarray(baseline, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.array([])
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_shares(values, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin (-inf, e1], (e1, e2], ..., (ek, inf), plus a last bin for missing values."""
    values = np.asarray(values, float)
    missing = ~np.isfinite(values)
    index = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def psi(baseline, current, bins: int = 10) -> float:
    """Population stability index: sum over bins of (current - baseline) x ln(current / baseline)."""
    edges = quantile_edges(baseline, bins)
    expected = np.maximum(bin_shares(baseline, edges), EPSILON)
    actual = np.maximum(bin_shares(current, edges), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(baseline, current) -> float:
    """Largest distance between the two empirical CDFs (missing values left out)."""
    a, b = np.asarray(baseline, float), np.asarray(current, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(ks_2samp(a, b).statistic)


def status(psi_value: float) -> str:
    """ok below 0.1, warn from 0.1 to 0.25, alert above 0.25 (the usual PSI reading)."""
    if not np.isfinite(psi_value) or psi_value < WARN_PSI:
        return "ok"
    return "warn" if psi_value <= ALERT_PSI else "alert"


def drift_report(baseline: pd.DataFrame, current: pd.DataFrame, features: list[str],
                 baseline_predictions, current_predictions) -> dict:
    """`{"features": {name: {psi, ks_stat, status}}, "prediction": {psi, ks_stat, status}, "status"}`;
    the overall status is the worst of all."""
    report = {"features": {}}
    for name in features:
        value = psi(baseline[name], current[name])
        report["features"][name] = {"psi": value, "ks_stat": ks_statistic(baseline[name], current[name]),
                                    "status": status(value)}
    # predictions are money: compared to the cent, so that a point mass (every customer without recent spend
    # gets the model's floor value) moving by a fraction of a cent does not jump across a bin edge
    baseline_predictions = np.round(np.asarray(baseline_predictions, float), 2)
    current_predictions = np.round(np.asarray(current_predictions, float), 2)
    prediction_psi = psi(baseline_predictions, current_predictions)
    report["prediction"] = {"psi": prediction_psi, "ks_stat": ks_statistic(baseline_predictions, current_predictions),
                            "status": status(prediction_psi)}
    ranking = {"ok": 0, "warn": 1, "alert": 2}
    statuses = [f["status"] for f in report["features"].values()] + [report["prediction"]["status"]]
    report["status"] = max(statuses, key=ranking.__getitem__)
    report["drifted_features"] = sorted(n for n, f in report["features"].items() if f["status"] == "alert")
    return report
