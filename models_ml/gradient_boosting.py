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
from models_ml.metrics import full_report

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
# Shallow trees for the offset model: the offset already carries the level, the trees only correct it.
OFFSET_MODEL_PARAMS = {"max_depth": 3, "n_estimators": 200}


@dataclass
class TrainingResult:
    model: "XGBoostCLV"
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


def champion_model(horizon_days: int = 365) -> "XGBoostCLV":
    """The model the weekly flow trains and registers: XGBoost correcting last year's spend (the one
    that beat the baselines on the strict holdouts; see the README's accuracy tables)."""
    return XGBoostCLV(OFFSET_MODEL_PARAMS, horizon_days=horizon_days, offset="last_period")


def train_with_temporal_holdout(training_set: pd.DataFrame, horizon_days: int = 365,
                                model_factory=None) -> TrainingResult:
    """Evaluate on the latest training cutoff with a model fit on the earlier ones, then refit on all.

    With a single cutoff there is no out-of-time holdout, and no holdout metrics are reported.
    """
    if training_set.empty:
        raise ValueError("the training set is empty: no customer has a full label window before the cutoff")
    make_model = model_factory or (lambda: champion_model(horizon_days))
    # A fixed row order makes the fit reproducible (warehouse scans return rows in any order).
    training_set = training_set.sort_values(["cutoff_date", "customer_id"], kind="mergesort", ignore_index=True)
    cutoffs = sorted(training_set["cutoff_date"].astype(str).unique())
    holdout_metrics: dict[str, float] = {}
    baseline_metrics: dict[str, float] = {}
    holdout_cutoff = None
    holdout_view = None
    rows_holdout = 0
    if len(cutoffs) >= 2:
        holdout_cutoff = cutoffs[-1]
        is_holdout = training_set["cutoff_date"].astype(str) == holdout_cutoff
        earlier, holdout = training_set[~is_holdout], training_set[is_holdout]
        y_true = holdout[TARGET].to_numpy(float)
        holdout_predictions = make_model().fit(earlier).predict(holdout)
        holdout_metrics = full_report(y_true, holdout_predictions)
        holdout_view = pd.DataFrame({"actual": y_true, "predicted": holdout_predictions})
        for column in ("country", "acquisition_channel"):
            if column in holdout:
                holdout_view[column] = holdout[column].fillna("unknown").to_numpy()
        baseline = holdout[BASELINE_FEATURE].clip(lower=0).fillna(0).to_numpy(float) * horizon_days / 365.0
        baseline_metrics = full_report(y_true, baseline)
        rows_holdout = len(holdout)
    model = make_model().fit(training_set)
    return TrainingResult(
        model=model,
        feature_columns=model.columns_,
        params={**DEFAULT_PARAMS, **(model.params or {}), "model": model.name},
        train_cutoffs=cutoffs,
        holdout_cutoff=holdout_cutoff,
        holdout_metrics=holdout_metrics,
        baseline_metrics=baseline_metrics,
        rows_trained=len(training_set),
        rows_holdout=rows_holdout,
        holdout=holdout_view,
    )


# Totals that grow with the history available before the cutoff: early training cutoffs see less
# history than the scoring cutoff, so these shift between training and scoring.
HISTORY_LENGTH_DEPENDENT = [
    "revenue_total", "tenure_days", "btyd_t", "order_days_count", "orders_count", "distinct_products_count",
    "btyd_frequency", "btyd_recency", "days_since_signup", "mean_days_between_orders", "std_days_between_orders",
    "btyd_monetary_value", "avg_order_value", "product_diversity_ratio", "return_rate", "revenue_share_90d",
]


def last_period_offset(frame: pd.DataFrame, horizon_days: int, floor: float = 20.0) -> np.ndarray:
    """log of last-365-day net spend scaled to the horizon (floored): the Tweedie model's log-link offset."""
    spend = frame["revenue_sum_365d"].clip(lower=0).fillna(0).to_numpy(float) * horizon_days / 365.0
    return np.log(np.maximum(spend, floor))


class XGBoostCLV:
    """XGBoost (Tweedie) on every numeric feature.

    - `with_btyd=True` is the hybrid: the BG/NBD + Gamma-Gamma outputs (expected orders, P(alive),
      expected order value, BTYD CLV) are added as features.
    - `offset="last_period"` makes the trees learn a multiplicative correction to last year's spend
      (log offset on the log link), on the windowed features only (`HISTORY_LENGTH_DEPENDENT` dropped):
      the predictions scale with each customer's spend instead of being bounded by the training range.
    """

    def __init__(self, params: dict | None = None, with_btyd: bool = False, horizon_days: int = 365,
                 offset: str | None = None):
        self.params = params
        self.with_btyd = with_btyd
        self.horizon_days = horizon_days
        self.offset = offset
        self.name = "hybrid" if with_btyd else ("xgboost_offset" if offset else "xgboost")

    def feature_columns(self, frame: pd.DataFrame) -> list[str]:
        columns = numeric_feature_columns(frame)
        return [c for c in columns if c not in HISTORY_LENGTH_DEPENDENT] if self.offset else columns

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        from models_ml.btyd import BgNbdGammaGamma

        columns = getattr(self, "columns_", None) or self.feature_columns(frame)
        X = feature_matrix(frame, [c for c in columns if c in frame.columns])
        if self.with_btyd:
            components = BgNbdGammaGamma(self.horizon_days).components(frame)
            X = pd.concat([X, components.set_axis(X.index)], axis=1)
        return X

    def _margin(self, frame: pd.DataFrame) -> dict:
        return {"base_margin": last_period_offset(frame, self.horizon_days)} if self.offset else {}

    def required_columns(self) -> list[str]:
        """Columns of customer_features that `predict` reads."""
        extra = ["revenue_sum_365d"] if self.offset else []
        if self.with_btyd:
            extra += ["cutoff_date", "btyd_frequency", "btyd_recency", "btyd_t", "btyd_monetary_value", "avg_order_value"]
        return list(dict.fromkeys([*self.columns_, *extra]))

    def fit(self, frame: pd.DataFrame, target=None) -> "XGBoostCLV":
        frame = frame.sort_values(["cutoff_date", "customer_id"], kind="mergesort")
        target = frame[TARGET] if target is None else target
        self.columns_ = self.feature_columns(frame)
        X = self.inputs(frame)
        if len(X) == 0:
            raise ValueError("no training rows: the training set is empty (is there a full horizon of history?)")
        self.model_ = xgb.XGBRegressor(**{**DEFAULT_PARAMS, **(self.params or {})})
        self.model_.fit(X, np.clip(np.asarray(target, float), 0, None), **self._margin(frame))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.clip(self.model_.predict(self.inputs(frame), **self._margin(frame)), 0, None).astype("float64")

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP values (XGBoost's exact TreeSHAP, `pred_contribs`), one column per input."""
        X = self.inputs(frame)
        matrix = xgb.DMatrix(X, **self._margin(frame))
        contribs = self.model_.get_booster().predict(matrix, pred_contribs=True)
        return pd.DataFrame(contribs[:, :-1], columns=X.columns, index=frame.index)
