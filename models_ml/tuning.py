"""Hyper-parameter search with Optuna on the same rolling protocol, on origins that lie strictly before
the evaluation's first origin (so the tuned configuration's backtest never saw its test windows). The
default configuration is the first trial, and a tuned configuration is returned only when it beats the
default on that validation; every trial is logged to MLflow as a nested run."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import optuna
import pandas as pd

from models_ml import zoo
from models_ml.protocol import run_backtest

log = logging.getLogger(__name__)
TUNED = ("max_depth", "learning_rate", "n_estimators", "min_child_weight", "subsample", "colsample_bytree",
         "tweedie_variance_power")


def search_space(trial: optuna.Trial) -> dict:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
        "min_child_weight": trial.suggest_float("min_child_weight", 1, 50, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "tweedie_variance_power": trial.suggest_float("tweedie_variance_power", 1.1, 1.9),
    }


def _default_params(spec: dict) -> dict:
    from models_ml.gradient_boosting import DEFAULT_PARAMS

    merged = {**DEFAULT_PARAMS, **(spec.get("params") or {})}
    return {k: merged[k] for k in TUNED}


def tune(training_set: pd.DataFrame, validation_plan, n_trials: int = 20, spec: dict | None = None,
         seed: int = 7, history_length_dependent=()) -> dict:
    """The best spec on the validation backtest (mean MAE over its origins), the default spec unless a trial
    beats it. Returns {"spec", "validation_mae", "default_validation_mae", "trials", "improved"}.
    `history_length_dependent`: the feature columns the offset model leaves out (`clv.dbt_manifest`)."""
    spec = spec or zoo.default_spec()
    if not validation_plan.feasible:
        raise ValueError(f"no validation origins before the test origins: {validation_plan.note}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def validation_mae(params: dict) -> float:
        candidate = {"type": spec["type"], "params": {**(spec.get("params") or {}), **params}}
        result = run_backtest(training_set, validation_plan, {"candidate": zoo.factory(candidate, history_length_dependent)},
                              resamples=0, reference=None)
        return float(np.mean([m["mae"] for m in result.per_origin["candidate"].values()]))

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial)
        value = validation_mae(params)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(params)
            mlflow.log_metric("validation_mae", value)
        return value

    with mlflow.start_run(run_name="xgboost-tuning", nested=mlflow.active_run() is not None):
        mlflow.log_params({"n_trials": n_trials, "objective": "mean validation MAE over origins",
                           "validation_origins": ",".join(validation_plan.origins),
                           "validation_horizon_days": validation_plan.horizon_days})
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial(_default_params(spec))  # trial 0 is the default configuration
        study.optimize(objective, n_trials=max(n_trials, 1))
        default_mae = study.trials[0].value
        improved = study.best_value < default_mae
        best = {**(spec.get("params") or {}), **study.best_params} if improved else dict(spec.get("params") or {})
        mlflow.log_metrics({"best_validation_mae": study.best_value, "default_validation_mae": default_mae})
        mlflow.log_param("returned", "tuned" if improved else "default (no trial beat it)")
    log.info("tuning: best of %d trials MAE %.3f vs default %.3f -> %s", n_trials, study.best_value, default_mae,
             "tuned" if improved else "default")
    return {"spec": {"type": spec["type"], "params": best}, "validation_mae": min(study.best_value, default_mae),
            "default_validation_mae": default_mae, "trials": len(study.trials), "improved": bool(improved)}
