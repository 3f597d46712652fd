"""Accuracy metrics for customer-level value predictions. Plain functions of (y_true, y_pred)."""

from __future__ import annotations

import numpy as np


def mae(y_true, y_pred) -> float:
    """Mean absolute error: mean |y - y_hat|."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean(np.abs(y_true - y_pred)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error: sqrt(mean (y - y_hat)^2). Dominated by the largest customers."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _gini(y_true: np.ndarray, ranking: np.ndarray) -> float:
    """Gini of the gain (Lorenz) curve: customers sorted by `ranking` descending, cumulative share of
    y_true, area above the diagonal. Ties keep input order (stable sort)."""
    order = np.argsort(-ranking, kind="mergesort")
    cumulative_share = np.cumsum(y_true[order]) / y_true.sum()
    n = len(y_true)
    return float(cumulative_share.sum() / n - (n + 1) / (2 * n))


def normalized_gini(y_true, y_pred) -> float:
    """Gini of the gain curve ranked by prediction / Gini ranked by the truth (1 = perfect ranking,
    0 = random). Wang, Liu & Miao (2019), "A deep probabilistic model for customer lifetime value
    prediction". NaN when the truth has no positive total or no spread."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y_true) < 2 or y_true.sum() <= 0:
        return float("nan")
    best = _gini(y_true, y_true)
    return float("nan") if best == 0 else _gini(y_true, y_pred) / best


def regression_report(y_true, y_pred) -> dict[str, float]:
    """The headline holdout metrics logged for every model."""
    return {"mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred), "normalized_gini": normalized_gini(y_true, y_pred)}
