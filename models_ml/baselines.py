"""Baselines every model must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models_ml.base import CLVModel


class LastPeriodSpend(CLVModel):
    """Next horizon = the last 365 days of net spend, scaled to the horizon length. Learns nothing."""

    name = "last_period"

    def __init__(self, horizon_days: int = 365):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y=None) -> "LastPeriodSpend":
        return self

    def required_columns(self) -> list[str]:
        return ["revenue_sum_365d"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        spend = X["revenue_sum_365d"].fillna(0).clip(lower=0).to_numpy(float)
        return spend * self.horizon_days / 365.0


def annualised_spend(X: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Last year's spend scaled to the horizon, and to a whole year where the shop's data cover less
    (`observable_history_days`, at early training cutoffs), as the offset model's offset."""
    spend = LastPeriodSpend(horizon_days).predict(X)
    if "observable_history_days" in X:
        spend = spend * 365.0 / X["observable_history_days"].fillna(365).clip(lower=30, upper=365).to_numpy(float)
    return spend


class ScaledLastPeriodSpend(CLVModel):
    """Last year's spend times one factor fitted out of time: the training rows' total revenue in the horizon
    over their total last-year spend (scaled to the horizon, and to a year where the data cover less:
    `annualised_spend`). The baseline to beat: it corrects last year's spend for the shop's level (growth,
    decline, the share of a year a shorter horizon holds) and nothing else.

    Parameters
    ----------
    horizon_days : int
        Prediction window after the cutoff, in days.
    factor : float, optional
        A factor already fitted (a served fallback keeps its own); None: learned by `fit`.
    """

    name = "last_period_scaled"

    def __init__(self, horizon_days: int = 365, factor: float | None = None):
        self.horizon_days = horizon_days
        self.factor = factor

    def fit(self, X: pd.DataFrame, y) -> "ScaledLastPeriodSpend":
        if self.factor is not None:
            self.factor_ = float(self.factor)
            return self
        spend = annualised_spend(X, self.horizon_days).sum() if len(X) else 0.0
        actual = float(np.clip(np.asarray(y, float), 0, None).sum())
        self.factor_ = actual / spend if spend > 0 else 1.0
        return self

    @property
    def params(self) -> dict:
        """The fitted factor, as the spec's params (so the served fallback is rebuilt with it)."""
        return {"factor": getattr(self, "factor_", self.factor)}

    def required_columns(self) -> list[str]:
        return ["revenue_sum_365d"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return annualised_spend(X, self.horizon_days) * self.factor_


class SpendRateTimesLifespan(CLVModel):
    """Average spend per day of tenure x the expected active days in the horizon, where the expected
    active share of the horizon is the share of training customers who bought again in it."""

    name = "heuristic"

    def __init__(self, horizon_days: int = 365):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y) -> "SpendRateTimesLifespan":
        self.retention_ = float((np.asarray(y, float) > 0).mean())
        return self

    def required_columns(self) -> list[str]:
        return ["revenue_total", "tenure_days"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        spend_per_day = X["revenue_total"].clip(lower=0) / X["tenure_days"].clip(lower=30)
        return (spend_per_day * self.horizon_days * self.retention_).fillna(0).to_numpy(float)
