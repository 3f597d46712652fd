"""XGBoost regressor for 12-month revenue, trained with a temporal holdout.

Revenue is zero-inflated and heavy-tailed, so the default objective is Tweedie (a compound
Poisson-gamma: a point mass at zero plus a skewed positive part).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from models_ml import tree_shap
from models_ml.base import CLVModel
from models_ml.features import feature_matrix, numeric_feature_columns

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


def last_period_offset(frame: pd.DataFrame, horizon_days: int, floor: float = 20.0) -> np.ndarray:
    """log of last-365-day net spend scaled to the horizon (floored): the Tweedie model's log-link offset.
    Where the shop's data cover less than the 365 days (`observable_history_days`, early training
    cutoffs), the window's spend is scaled up to a year first, so the offset means the same thing at every
    cutoff and the trees do not learn an inflated multiplier from short windows."""
    spend = frame["revenue_sum_365d"].clip(lower=0).fillna(0).to_numpy(float)
    if "observable_history_days" in frame:
        seen = frame["observable_history_days"].fillna(365).clip(lower=30, upper=365).to_numpy(float)
        spend = spend * 365.0 / seen
    return np.log(np.maximum(spend * horizon_days / 365.0, floor))


class XGBoostCLV(CLVModel):
    """XGBoost (Tweedie) on every numeric feature of customer_features.

    Parameters
    ----------
    params : dict, optional
        XGBoost parameters over `DEFAULT_PARAMS`.
    horizon_days : int
        Prediction window after the cutoff, in days (the label's horizon).
    columns : sequence of str, optional
        Use only these feature columns (a champion refit on its own inputs, to compare it with a
        challenger that has new ones); None: every numeric feature.

    Notes
    -----
    Two variants are their own classes: `HybridCLV` adds the BG/NBD + Gamma-Gamma outputs as features and
    `OffsetXGBoostCLV` learns a multiplicative correction to last year's spend.
    """

    name = "xgboost"
    with_btyd = False  # add the BTYD components as features (HybridCLV)
    offset: str | None = None  # "last_period": a log offset of last year's spend (OffsetXGBoostCLV)

    def __init__(self, params: dict | None = None, horizon_days: int = 365, columns=None):
        self.params = params
        self.horizon_days = horizon_days
        self.columns = columns

    def feature_columns(self, frame: pd.DataFrame) -> list[str]:
        if self.columns is not None:
            return [c for c in self.columns if c in frame.columns]
        return numeric_feature_columns(frame)

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        from models_ml.btyd import BgNbdGammaGamma

        columns = getattr(self, "columns_", None) or self.feature_columns(frame)
        X = feature_matrix(frame, [c for c in columns if c in frame.columns])
        if self.with_btyd:
            components = BgNbdGammaGamma(self.horizon_days).components(frame).round(9)  # as feature_matrix
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

    def fit(self, X: pd.DataFrame, y) -> "XGBoostCLV":
        # rows in (cutoff, customer) order: the same fit whatever order the warehouse returned them in
        order = X.reset_index(drop=True).sort_values(["cutoff_date", "customer_id"], kind="mergesort").index
        frame, target = X.iloc[np.asarray(order)], np.asarray(y, float)[np.asarray(order)]
        self.columns_ = self.feature_columns(frame)
        X = self.inputs(frame)
        if len(X) == 0:
            raise ValueError("no training rows: the training set is empty (is there a full horizon of history?)")
        self.model_ = xgb.XGBRegressor(**{**DEFAULT_PARAMS, **(self.params or {})})
        self.__dict__.pop("tree_splits_", None)
        margin = self._margin(frame)
        self.offset_mean_ = float(np.mean(margin["base_margin"])) if margin else 0.0
        self.model_.fit(X, np.clip(target, 0, None), **margin)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.clip(self.model_.predict(self.inputs(X), **self._margin(X)), 0, None).astype("float64")

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP values (XGBoost's exact TreeSHAP, `pred_contribs`), one column per input."""
        X = self.inputs(frame)
        contribs = self._tree_shap(X, self._margin(frame).get("base_margin"))
        return pd.DataFrame(contribs[:, :-1], columns=X.columns, index=frame.index)

    def _tree_shap(self, X: pd.DataFrame, margin) -> np.ndarray:
        """XGBoost's exact TreeSHAP (one column per input, then the bias), tree by tree on one row per
        split pattern (`models_ml/tree_shap.py`)."""
        if "tree_splits_" not in self.__dict__:
            self.tree_splits_ = tree_shap.tree_splits(self.model_.get_booster())
        return tree_shap.contributions(self.model_.get_booster(), X, margin, self.tree_splits_)

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each input's contribution to the prediction in currency, relative to the average customer (the
        model's prediction for a customer at the training average): exact TreeSHAP values in the log
        margin, plus last year's spend as its own term for the offset model (its offset minus the
        training average), scaled so that a row's contributions sum to its prediction minus the average
        customer's."""
        X = self.inputs(frame)
        margin = self._margin(frame)
        contribs = self._tree_shap(X, margin.get("base_margin"))
        logs = pd.DataFrame(contribs[:, :-1], columns=X.columns, index=frame.index)
        bias = contribs[:, -1]
        if margin:
            offset = np.asarray(margin["base_margin"], float)
            mean_offset = getattr(self, "offset_mean_", float(offset.mean()))
            logs.insert(0, "last_year_spend", offset - mean_offset)
            log_reference = bias - offset + mean_offset
        else:
            log_reference = bias
        total = logs.to_numpy(float).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.exp(log_reference) * np.where(np.abs(total) > 1e-9, np.expm1(total) / total, 1.0)
        return logs.mul(scale, axis=0)


class HybridCLV(XGBoostCLV):
    """XGBoost (Tweedie) on the features plus the BG/NBD + Gamma-Gamma outputs (expected orders,
    P(alive), expected order value, BTYD CLV), fit per cutoff."""

    name = "hybrid"
    with_btyd = True


class OffsetXGBoostCLV(XGBoostCLV):
    """XGBoost (Tweedie) learning a multiplicative correction to last year's spend: a log offset on the
    log link (`last_period_offset`), trees on the windowed features only, so predictions scale with each
    customer's spend instead of being bounded by the training range. The champion's default type.

    Parameters
    ----------
    history_length_dependent : sequence of str
        Feature columns left out of the trees: totals that grow with the history before the cutoff
        (the columns whose dbt meta sets `history_length_dependent`; the pipeline reads them from the
        build's manifest, `clv.dbt_manifest`). Early training cutoffs see less history than the scoring
        cutoff, so these would shift between training and serving.
    """

    name = "xgboost_offset"
    offset = "last_period"

    def __init__(self, params: dict | None = None, horizon_days: int = 365, history_length_dependent=(), columns=None):
        super().__init__(params, horizon_days, columns)
        self.history_length_dependent = history_length_dependent

    def feature_columns(self, frame: pd.DataFrame) -> list[str]:
        dependent = set(self.history_length_dependent)
        return [c for c in super().feature_columns(frame) if c not in dependent]
