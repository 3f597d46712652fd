"""XGBoost regressor for 12-month revenue, trained with a temporal holdout.

Revenue is zero-inflated and heavy-tailed, so the default objective is Tweedie (a compound
Poisson-gamma: a point mass at zero plus a skewed positive part).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

from models_ml.features import TARGET, feature_matrix, numeric_feature_columns
from models_ml.metrics import regression_report

DEFAULT_PARAMS = {
    "objective": "reg:tweedie",
    "tweedie_variance_power": 1.5,
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 5,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "random_state": 42,
    "n_jobs": 2,
}
# Baseline shown beside the model: next year's spend = last year's net spend.
BASELINE_FEATURE = "revenue_sum_365d"


@dataclass
class TrainingResult:
    model: xgb.XGBRegressor
    feature_columns: list[str]
    params: dict
    train_cutoffs: list[str]
    holdout_cutoff: str | None
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    rows_trained: int = 0
    rows_holdout: int = 0
    # holdout rows with truth, prediction and slice columns, for plots and the model card
    holdout: pd.DataFrame | None = None


def fit_regressor(features: pd.DataFrame, target: pd.Series, params: dict | None = None) -> xgb.XGBRegressor:
    """Fit an XGBoost regressor on a feature matrix and a non-negative target."""
    if len(features) == 0:
        raise ValueError("no training rows: the training set is empty (is there a full horizon of history?)")
    model = xgb.XGBRegressor(**{**DEFAULT_PARAMS, **(params or {})})
    model.fit(features, target.clip(lower=0))
    return model


def predict_revenue(model: xgb.XGBRegressor, features: pd.DataFrame) -> np.ndarray:
    """Predicted revenue, never negative."""
    return np.clip(model.predict(features), 0, None).astype("float64")


def train_with_temporal_holdout(training_set: pd.DataFrame, params: dict | None = None) -> TrainingResult:
    """Evaluate on the latest training cutoff with a model fit on the earlier ones, then refit on all.

    With a single cutoff there is no out-of-time holdout, and no holdout metrics are reported.
    """
    if training_set.empty:
        raise ValueError("the training set is empty: no customer has a full label window before the cutoff")
    # A fixed row order makes the fit reproducible (warehouse scans return rows in any order).
    training_set = training_set.sort_values(["cutoff_date", "customer_id"], kind="mergesort", ignore_index=True)
    columns = numeric_feature_columns(training_set)
    cutoffs = sorted(training_set["cutoff_date"].astype(str).unique())
    result_params = {**DEFAULT_PARAMS, **(params or {})}
    holdout_metrics: dict[str, float] = {}
    baseline_metrics: dict[str, float] = {}
    holdout_cutoff = None
    holdout_view = None
    rows_holdout = 0
    if len(cutoffs) >= 2:
        holdout_cutoff = cutoffs[-1]
        is_holdout = training_set["cutoff_date"].astype(str) == holdout_cutoff
        earlier, holdout = training_set[~is_holdout], training_set[is_holdout]
        backtest_model = fit_regressor(feature_matrix(earlier, columns), earlier[TARGET], params)
        y_true = holdout[TARGET].to_numpy(float)
        holdout_predictions = predict_revenue(backtest_model, feature_matrix(holdout, columns))
        holdout_metrics = regression_report(y_true, holdout_predictions)
        holdout_view = pd.DataFrame({"actual": y_true, "predicted": holdout_predictions})
        for column in ("country", "acquisition_channel"):
            if column in holdout:
                holdout_view[column] = holdout[column].fillna("unknown").to_numpy()
        baseline = holdout[BASELINE_FEATURE].clip(lower=0).fillna(0).to_numpy(float)
        baseline_metrics = regression_report(y_true, baseline)
        rows_holdout = len(holdout)
    model = fit_regressor(feature_matrix(training_set, columns), training_set[TARGET], params)
    return TrainingResult(
        model=model,
        feature_columns=columns,
        params=result_params,
        train_cutoffs=cutoffs,
        holdout_cutoff=holdout_cutoff,
        holdout_metrics=holdout_metrics,
        baseline_metrics=baseline_metrics,
        rows_trained=len(training_set),
        rows_holdout=rows_holdout,
        holdout=holdout_view,
    )


class XGBoostCLV:
    """XGBoost (Tweedie) on every numeric feature; `with_btyd=True` is the hybrid, which adds the
    BG/NBD + Gamma-Gamma outputs (expected orders, P(alive), expected order value, BTYD CLV) as features."""

    def __init__(self, params: dict | None = None, with_btyd: bool = False, horizon_days: int = 365):
        self.params = params
        self.with_btyd = with_btyd
        self.horizon_days = horizon_days
        self.name = "hybrid" if with_btyd else "xgboost"

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        from models_ml.btyd import BgNbdGammaGamma

        columns = getattr(self, "columns_", None) or numeric_feature_columns(frame)
        X = feature_matrix(frame, [c for c in columns if c in frame.columns])
        if self.with_btyd:
            components = BgNbdGammaGamma(self.horizon_days).components(frame)
            X = pd.concat([X, components.set_axis(X.index)], axis=1)
        return X

    def fit(self, frame: pd.DataFrame, target=None) -> "XGBoostCLV":
        frame = frame.sort_values(["cutoff_date", "customer_id"], kind="mergesort")
        target = frame[TARGET] if target is None else target
        self.columns_ = numeric_feature_columns(frame)
        self.model_ = fit_regressor(self.inputs(frame), pd.Series(np.asarray(target, float)), self.params)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return predict_revenue(self.model_, self.inputs(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP values (XGBoost's exact TreeSHAP, `pred_contribs`), one column per input."""
        X = self.inputs(frame)
        contribs = self.model_.get_booster().predict(xgb.DMatrix(X), pred_contribs=True)
        return pd.DataFrame(contribs[:, :-1], columns=X.columns, index=frame.index)
