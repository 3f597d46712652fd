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
