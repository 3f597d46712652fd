"""Linear regression on RFM features (log-scaled spend), the simplest supervised model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models_ml.features import TARGET

RFM_COLUMNS = ["days_since_last_order", "order_days_count", "avg_order_value", "tenure_days",
               "revenue_total", "revenue_sum_365d", "orders_count_365d"]


class LinearRFM:
    name = "linear"

    def fit(self, frame: pd.DataFrame, target=None) -> "LinearRFM":
        target = frame[TARGET] if target is None else target
        self.model_ = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LinearRegression())
        self.model_.fit(self._inputs(frame), np.asarray(target, float))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.clip(self.model_.predict(self._inputs(frame)), 0, None)

    @staticmethod
    def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
        inputs = frame[RFM_COLUMNS].astype(float)
        for column in ("avg_order_value", "revenue_total", "revenue_sum_365d"):
            inputs[column] = np.sign(inputs[column]) * np.log1p(inputs[column].abs())
        return inputs
