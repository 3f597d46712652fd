"""The model contract every CLV model follows: a scikit-learn regressor on the feature table.

- `fit(X, y)` returns the model. `X` is rows of `customer_features` (the keys `customer_id` and
  `cutoff_date` and the feature columns; never a label), `y` the revenue in the horizon after each row's
  cutoff (`future_revenue`). Models that learn nothing from labels (last year's spend, BG/NBD) accept and
  ignore `y`.
- `predict(X)` returns one non-negative float per row, in X's order.
- Constructor arguments are stored unchanged, so `get_params`, `set_params` and `sklearn.base.clone`
  work, and a model is rebuilt from its spec (`models_ml/zoo.py`).
- `name` is the model's type in specs, the registry and the reports.

`tests/models_ml/test_model_contract.py` runs these rules over every model of the zoo.
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from models_ml.features import LABEL_COLUMNS, TARGET


class CLVModel(RegressorMixin, BaseEstimator):
    """Base class of the zoo's models (see the module docstring for the contract)."""

    name: str = "clv_model"

    def fit(self, X: pd.DataFrame, y=None) -> "CLVModel":  # pragma: no cover - every model overrides it
        raise NotImplementedError

    def predict(self, X: pd.DataFrame):  # pragma: no cover - every model overrides it
        raise NotImplementedError


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Split labelled snapshots (`customer_training_set` rows) into the model's X (no label column) and y."""
    return frame.drop(columns=[c for c in LABEL_COLUMNS if c in frame.columns]), frame[TARGET]
