"""Linear regression on RFM features (log-scaled spend), the simplest supervised model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models_ml.base import CLVModel

RFM_COLUMNS = ["days_since_last_order", "order_days_count", "avg_order_value", "tenure_days",
               "revenue_total", "revenue_sum_365d", "orders_count_365d"]


class LinearRFM(CLVModel):
    """Ordinary least squares on standardised RFM columns, spend columns signed-log scaled; predictions
    clipped at zero."""

    name = "linear"

    def __init__(self, horizon_days: int = 365):
        self.horizon_days = horizon_days  # the label's horizon (the regression learns its scale)

    def fit(self, X: pd.DataFrame, y) -> "LinearRFM":
        self.model_ = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LinearRegression())
        self.model_.fit(self._inputs(X), np.asarray(y, float))
        return self

    def required_columns(self) -> list[str]:
        return list(RFM_COLUMNS)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.clip(self.model_.predict(self._inputs(X)), 0, None)

    @staticmethod
    def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
        inputs = frame[RFM_COLUMNS].astype(float)
        for column in ("avg_order_value", "revenue_total", "revenue_sum_365d"):
            inputs[column] = np.sign(inputs[column]) * np.log1p(inputs[column].abs())
        return inputs
