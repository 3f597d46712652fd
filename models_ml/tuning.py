"""Hyper-parameter search for the XGBoost model with Optuna, on a temporal validation split of the
training data only (the test period is never seen), every trial logged to MLflow as a nested run."""

from __future__ import annotations

import logging

import mlflow
import optuna
import pandas as pd

from models_ml.evaluation import strict_temporal_split
from models_ml.features import TARGET
from models_ml.gradient_boosting import XGBoostCLV
from models_ml.metrics import full_report

log = logging.getLogger(__name__)


def validation_split(train: pd.DataFrame, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Strict split of the training cutoffs when it leaves training rows; otherwise the earlier cutoffs
    against the latest one (label windows then overlap: said in the returned protocol)."""
    inner, valid = strict_temporal_split(train, horizon_days)
    if not inner.empty:
        return inner, valid, "strict"
    cutoffs = pd.to_datetime(train["cutoff_date"])
    latest = cutoffs.max()
    return train[cutoffs < latest], train[cutoffs == latest], "overlapping label windows"


def search_space(trial: optuna.Trial) -> dict:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 600, step=50),
        "min_child_weight": trial.suggest_float("min_child_weight", 1, 50, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "tweedie_variance_power": trial.suggest_float("tweedie_variance_power", 1.05, 1.9),
    }


def tune_xgboost(train: pd.DataFrame, horizon_days: int, n_trials: int = 20, seed: int = 7,
                 with_btyd: bool = False) -> dict:
    """Minimise validation MAE over `n_trials`; returns the best parameters. Needs an active MLflow
    experiment: a parent run holds one nested run per trial."""
    inner, valid, protocol = validation_split(train, horizon_days)
    if inner.empty:
        raise ValueError("tuning needs at least two training cutoffs")
    y = valid[TARGET].to_numpy(float)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial)
        predictions = XGBoostCLV(params, with_btyd, horizon_days).fit(inner).predict(valid)
        metrics = full_report(y, predictions)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(params)
            mlflow.log_metrics({f"validation_{k}": v for k, v in metrics.items() if v == v})
        trial.set_user_attr("normalized_gini", metrics["normalized_gini"])
        return metrics["mae"]

    with mlflow.start_run(run_name="xgboost-tuning", nested=mlflow.active_run() is not None):
        mlflow.log_params({"n_trials": n_trials, "validation_protocol": protocol, "objective": "validation MAE",
                           "validation_cutoff": str(pd.Timestamp(valid["cutoff_date"].iloc[0]).date())})
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=n_trials)
        mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
        mlflow.log_metric("best_validation_mae", study.best_value)
    log.info("best of %d trials: MAE %.3f with %s", n_trials, study.best_value, study.best_params)
    return study.best_params
