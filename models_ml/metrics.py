"""Accuracy metrics for customer-level value predictions. Plain functions of (y_true, y_pred)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mae(y_true, y_pred) -> float:
    """Mean absolute error: mean |y - y_hat|."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.mean(np.abs(y_true - y_pred)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error: sqrt(mean (y - y_hat)^2). Dominated by the largest customers."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


DEVIANCE_FLOOR_SHARE = 1e-3


def deviance_floor(y_true) -> float:
    """The smallest prediction the deviance scores: a thousandth of the mean (non-negative) actual value. A
    mean of exactly 0 for a customer who may still buy has infinite Poisson deviance; the floor keeps the
    score finite while still charging heavily for it (the same floor for every model on the same rows)."""
    mean = float(np.mean(np.clip(np.asarray(y_true, float), 0, None))) if len(y_true) else 0.0
    return max(DEVIANCE_FLOOR_SHARE * mean, 1e-9)


def poisson_deviance_terms(y_true, y_pred, floor: float | None = None) -> np.ndarray:
    """Each row's Poisson unit deviance 2 (y log(y / mu) - (y - mu)), with y clipped at 0 (net returns) and mu
    floored (`deviance_floor`). Its mean is scikit-learn's `mean_poisson_deviance`."""
    y = np.clip(np.asarray(y_true, float), 0, None)
    mu = np.maximum(np.asarray(y_pred, float), deviance_floor(y) if floor is None else floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        y_log = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2 * (y_log - y + mu)


def poisson_deviance(y_true, y_pred) -> float:
    """Mean Poisson deviance (McCullagh & Nelder 1989, sec. 2.3; scikit-learn's `mean_poisson_deviance`):
    a proper score for a predicted mean, unlike MAE, which rewards predicting the median (0 for most
    customers). Lower is better; see `poisson_deviance_terms` for the floor and clipping."""
    return float(np.mean(poisson_deviance_terms(y_true, y_pred)))


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
    return {"deviance": poisson_deviance(y_true, y_pred), "mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred),
            "normalized_gini": normalized_gini(y_true, y_pred)}


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation of prediction and truth (NaN when either is constant)."""
    from scipy.stats import spearmanr

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(spearmanr(y_true, y_pred).statistic)


def decile_bins(y_pred, n_bins: int = 10) -> np.ndarray:
    """Bin index 1..n_bins by predicted rank, ascending; ties broken by position (rank-based bins:
    quantile cuts fail when many predictions are equal)."""
    ranks = pd.Series(np.asarray(y_pred, float)).rank(method="first").to_numpy()
    return np.ceil(ranks * n_bins / len(ranks)).astype(int)


def decile_table(y_true, y_pred, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted and mean actual value per predicted-rank bin (the decile / calibration chart)."""
    frame = pd.DataFrame({"bin": decile_bins(y_pred, n_bins), "predicted": np.asarray(y_pred, float),
                          "actual": np.asarray(y_true, float)})
    table = frame.groupby("bin").agg(customers=("actual", "size"), predicted_mean=("predicted", "mean"),
                                     actual_mean=("actual", "mean"))
    return table.reset_index()


def decile_calibration_error(y_true, y_pred, n_bins: int = 10) -> float:
    """Calibration by decile in one number: sum over predicted-rank deciles of |predicted total - actual total|
    / actual total (0 = every decile calibrated; a model right in total but 5x too high at the bottom and
    0.7x in the middle scores well above 0, which the total ratio hides)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    total = y_true.sum()
    if total <= 0 or len(y_true) < n_bins:
        return float("nan")
    bins = decile_bins(y_pred, n_bins)
    predicted, actual = np.bincount(bins, y_pred, n_bins + 1), np.bincount(bins, y_true, n_bins + 1)
    return float(np.abs(predicted - actual).sum() / total)


def decile_mape(y_true, y_pred, n_bins: int = 10) -> float:
    """Mean over bins of |mean predicted - mean actual| / mean actual (bins with zero actual skipped).
    Wang, Liu & Miao (2019)."""
    table = decile_table(y_true, y_pred, n_bins)
    table = table[table["actual_mean"] > 0]
    return float(np.mean(np.abs(table["predicted_mean"] - table["actual_mean"]) / table["actual_mean"]))


def top_capture(y_true, y_pred, share: float = 0.1) -> float:
    """Share of total actual value held by the top `share` of customers ranked by prediction."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    n_top = max(int(np.ceil(share * len(y_true))), 1)
    top = np.argsort(-y_pred, kind="mergesort")[:n_top]
    total = y_true.sum()
    return float(y_true[top].sum() / total) if total > 0 else float("nan")


def calibration_ratio(y_true, y_pred) -> float:
    """Total predicted / total actual (1 = calibrated in aggregate)."""
    total = float(np.sum(y_true))
    return float(np.sum(y_pred)) / total if total > 0 else float("nan")


def full_report(y_true, y_pred) -> dict[str, float]:
    """Every customer-level metric the evaluation harness reports for one model."""
    return {
        **regression_report(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "decile_mape": decile_mape(y_true, y_pred),
        "top10_capture": top_capture(y_true, y_pred, 0.1),
        "calibration_ratio": calibration_ratio(y_true, y_pred),
        "decile_calibration_error": decile_calibration_error(y_true, y_pred),
    }


def disparate_impact_ratio(y_pred, groups) -> float:
    """Smallest / largest mean predicted value across groups (1 = equal; the four-fifths rule flags
    values below 0.8). Groups with missing labels are ignored."""
    means = pd.Series(np.asarray(y_pred, float)).groupby(pd.Series(groups).to_numpy()).mean()
    means = means[means.index.notna()] if len(means) else means
    if len(means) < 2 or means.max() <= 0:
        return float("nan")
    return float(means.min() / means.max())
