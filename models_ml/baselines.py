"""Baselines every model must beat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models_ml.features import TARGET


class LastPeriodSpend:
    """Next horizon = the last 365 days of net spend, scaled to the horizon length."""

    name = "last_period"

    def __init__(self, horizon_days: int = 365):
        self.horizon_days = horizon_days

    def fit(self, frame: pd.DataFrame, target=None) -> "LastPeriodSpend":
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        spend = frame["revenue_sum_365d"].fillna(0).clip(lower=0).to_numpy(float)
        return spend * self.horizon_days / 365.0


class SpendRateTimesLifespan:
    """Average spend per day of tenure x the expected active days in the horizon, where the expected
    active share of the horizon is the share of training customers who bought again in it."""

    name = "heuristic"

    def __init__(self, horizon_days: int = 365):
        self.horizon_days = horizon_days

    def fit(self, frame: pd.DataFrame, target=None) -> "SpendRateTimesLifespan":
        target = frame[TARGET] if target is None else target
        self.retention_ = float((np.asarray(target) > 0).mean())
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        spend_per_day = frame["revenue_total"].clip(lower=0) / frame["tenure_days"].clip(lower=30)
        return (spend_per_day * self.horizon_days * self.retention_).fillna(0).to_numpy(float)
