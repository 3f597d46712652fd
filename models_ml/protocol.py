"""The one evaluation protocol: a rolling-origin backtest, strictly out of time, with paired bootstrap
intervals. The weekly run, the promotion gates and `clv bench accuracy` all use it.

At each origin every model is fit on the training cutoffs whose label window ends on or before the
origin (the plan from clv/snapshots.py) and scored on the customers known at the origin. Metrics are the
mean over origins of each origin's value, and every origin's own values are kept (`per_origin`).

The primary score is the Poisson deviance (a proper score for a predicted mean); normalized Gini judges
the ranking and predicted / actual the level; MAE is reported, not decided on (it rewards predicting the
median, 0 for most customers). Intervals come from a paired bootstrap that resamples customers (a
customer's rows at every origin move together, so repeated customers do not shrink the interval) and
the origins themselves (a model good at two origins and poor at the third does not get an interval that
hides it), applying the same resample to every model, so a difference's interval is paired. The latest
origin's differences also get their own interval (customers resampled at that origin only).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_ml.base import features_and_target
from models_ml.features import TARGET
from models_ml.metrics import (
    calibration_ratio,
    decile_calibration_error,
    deviance_floor,
    mae,
    normalized_gini,
    poisson_deviance_terms,
    rmse,
)

log = logging.getLogger(__name__)
HEADLINE_METRICS = ("deviance", "normalized_gini", "calibration_ratio", "mae")
POINT_METRICS = (*HEADLINE_METRICS, "rmse", "decile_calibration_error")
LOWER_IS_BETTER = {"deviance": True, "mae": True, "rmse": True, "decile_calibration_error": True,
                   "normalized_gini": False}
BASELINE = "last_period"
SLICE_COLUMNS = ("country", "acquisition_channel")


@dataclass
class BacktestResult:
    horizon_days: int
    origins: list[str]
    note: str
    rows: pd.DataFrame  # origin, customer_id, actual and slice columns, one row per scored customer and origin
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    ci: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    per_origin: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # model -> metric_diff_vs_reference -> interval at the latest origin alone
    latest_origin_ci: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # model -> its predictive distribution checked out of time (models_ml/spread.evaluate_spread)
    distribution: dict[str, dict] = field(default_factory=dict)

    def latest_difference(self, model: str, reference: str, metric: str) -> dict:
        """model - reference at the latest origin, and its paired 95% interval there."""
        latest = self.origins[-1]
        point = self.per_origin[model][latest][metric] - self.per_origin[reference][latest][metric]
        low, high = self.latest_origin_ci.get(model, {}).get(f"{metric}_diff_vs_{reference}", [np.nan, np.nan])
        return {"origin": latest, "difference": point, "ci": [low, high]}

    def difference(self, model: str, reference: str, metric: str) -> dict:
        """Point difference (model - reference, mean over origins) and its paired 95% interval."""
        point = self.metrics[model][metric] - self.metrics[reference][metric]
        low, high = self.ci[model].get(f"{metric}_diff_vs_{reference}", [np.nan, np.nan])
        return {"difference": point, "ci": [low, high]}

    def summary(self) -> dict:
        return {"horizon_days": self.horizon_days, "origins": self.origins, "note": self.note,
                "rows": len(self.rows), "metrics": self.metrics, "ci": self.ci, "per_origin": self.per_origin,
                "latest_origin_ci": self.latest_origin_ci, "distribution": self.distribution}


def _weighted_gini(y: np.ndarray, w: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Gini of the gain curve for each weight vector (rows of w), customers taken in `order`.
    With unit weights this is metrics._gini. The population's own cumulative share does not depend on the
    order: sum_i w_i (w_1 + ... + w_i) = (W^2 + sum w^2) / 2, so only the revenue's is taken in order."""
    ordered = w[:, order]
    revenue = ordered * y[order]
    total_w, total_revenue = ordered.sum(axis=1), revenue.sum(axis=1)
    cross = np.einsum("ij,ij->i", ordered, np.cumsum(revenue, axis=1))
    return cross / (total_w * total_revenue) - (1 + np.einsum("ij,ij->i", w, w) / total_w**2) / 2


def weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray, truth_order: np.ndarray | None = None,
                     floor: float | None = None, order: np.ndarray | None = None,
                     deviance_terms: np.ndarray | None = None, truth_gini: np.ndarray | None = None) -> dict:
    """Poisson deviance, MAE, normalized Gini and calibration ratio under each row of weights w (shape B x n);
    `floor`: the deviance's prediction floor (default `metrics.deviance_floor(y)`). The orders by truth and by
    prediction and the rows' deviance terms do not depend on the weights, and the truth's Gini not on the
    model: pass them to reuse them."""
    truth_order = np.argsort(-y, kind="mergesort") if truth_order is None else truth_order
    order = np.argsort(-p, kind="mergesort") if order is None else order
    terms = poisson_deviance_terms(y, p, floor) if deviance_terms is None else deviance_terms
    truth_gini = _weighted_gini(y, w, truth_order) if truth_gini is None else truth_gini
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "deviance": w @ terms / total,
            "mae": (w * np.abs(y - p)).sum(axis=1) / total,
            "normalized_gini": _weighted_gini(y, w, order) / truth_gini,
            "calibration_ratio": (w * p).sum(axis=1) / (w * y).sum(axis=1),
        }


def point_metrics(y, p) -> dict[str, float]:
    """Every metric of one origin's rows (`POINT_METRICS`)."""
    return {"deviance": float(np.mean(poisson_deviance_terms(y, p))), "normalized_gini": normalized_gini(y, p),
            "calibration_ratio": calibration_ratio(y, p), "mae": mae(y, p), "rmse": rmse(y, p),
            "decile_calibration_error": decile_calibration_error(y, p)}


def paired_bootstrap(rows: pd.DataFrame, predictions: dict[str, np.ndarray],
                     reference: str | tuple[str, ...] | None = BASELINE,
                     resamples: int = 200, seed: int = 0, resample_origins: bool = True) -> dict[str, dict[str, list[float]]]:
    """95% percentile intervals of each model's metrics and of each model-minus-reference difference (one
    reference or several), resampling customers (all their origins together) and, with `resample_origins`,
    the origins (each resample weighs the origins by a multinomial draw), the same resamples for every
    model."""
    return paired_bootstrap_by_origin(rows, predictions, reference, resamples, seed, resample_origins)[0]


def paired_bootstrap_by_origin(rows: pd.DataFrame, predictions: dict[str, np.ndarray],
                               reference: str | tuple[str, ...] | None = BASELINE, resamples: int = 200,
                               seed: int = 0, resample_origins: bool = True):
    """`paired_bootstrap`'s intervals, and the differences' intervals at the latest origin alone."""
    rng = np.random.default_rng(seed)
    customers, customer_index = np.unique(rows["customer_id"].astype(str).to_numpy(), return_inverse=True)
    origins = rows["origin"].to_numpy()
    y = rows["actual"].to_numpy(float)
    origin_names = list(pd.unique(origins))
    by_origin = [(np.flatnonzero(origins == o)) for o in origin_names]
    truth_orders = [np.argsort(-y[idx], kind="mergesort") for idx in by_origin]
    floors = [deviance_floor(y[idx]) for idx in by_origin]
    # what does not depend on the resample, once per model and origin
    orders = {name: [np.argsort(-p[idx], kind="mergesort") for idx in by_origin] for name, p in predictions.items()}
    terms = {name: [poisson_deviance_terms(y[idx], p[idx], floor) for idx, floor in zip(by_origin, floors)]
             for name, p in predictions.items()}
    # draws[name][metric]: one (resamples x origins) array per chunk
    draws: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in HEADLINE_METRICS} for name in predictions}
    origin_weights = []
    chunk = int(max(1, min(25, 5_000_000 // max(len(rows), 1))))  # bounded memory: chunk x rows weights
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = rng.multinomial(len(customers), np.full(len(customers), 1 / len(customers)), size=b).astype(float)
        weights = counts[:, customer_index]
        n_origins = len(by_origin)
        origin_weights.append(rng.multinomial(n_origins, np.full(n_origins, 1 / n_origins), size=b).astype(float)
                              if resample_origins else np.ones((b, n_origins)))
        origin_weights_of = [weights[:, idx] for idx in by_origin]
        truth_ginis = [_weighted_gini(y[idx], w, truth) for idx, w, truth in zip(by_origin, origin_weights_of, truth_orders)]
        for name, p in predictions.items():
            per_origin = [weighted_metrics(y[idx], p[idx], w, truth, floor, by_prediction, deviance, best)
                          for idx, w, truth, floor, by_prediction, deviance, best
                          in zip(by_origin, origin_weights_of, truth_orders, floors, orders[name], terms[name], truth_ginis)]
            for metric in HEADLINE_METRICS:
                draws[name][metric].append(np.column_stack([m[metric] for m in per_origin]))
    v = np.concatenate(origin_weights)
    per_origin_draws = {name: {m: np.concatenate(d) for m, d in metrics.items()} for name, metrics in draws.items()}

    def over_origins(values: np.ndarray) -> np.ndarray:  # the origin-weighted mean of each resample
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.where(finite, values, 0) * v).sum(axis=1) / (v * finite).sum(axis=1)

    intervals: dict[str, dict[str, list[float]]] = {}
    latest: dict[str, dict[str, list[float]]] = {}
    for name, values in per_origin_draws.items():
        intervals[name] = {m: _interval(over_origins(values[m])) for m in HEADLINE_METRICS}
        latest[name] = {}
        for other in ((reference,) if isinstance(reference, str) else reference or ()):
            if other in per_origin_draws and name != other:
                for metric in HEADLINE_METRICS:
                    difference = values[metric] - per_origin_draws[other][metric]
                    intervals[name][f"{metric}_diff_vs_{other}"] = _interval(over_origins(difference))
                    latest[name][f"{metric}_diff_vs_{other}"] = _interval(difference[:, -1])
    return intervals, latest


def _interval(values: np.ndarray) -> list[float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def backtest_rows(training_set: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """The labelled snapshots at one label horizon, in a fixed order (warehouse scans return any order)."""
    frame = training_set
    if "horizon_days" in frame:
        frame = frame[frame["horizon_days"].astype(int) == int(horizon_days)]
    frame = frame.assign(cutoff_date=pd.to_datetime(frame["cutoff_date"]).dt.date.astype(str))
    return frame.sort_values(["cutoff_date", "customer_id"], kind="mergesort", ignore_index=True)


def run_backtest(training_set: pd.DataFrame, plan, model_factories: dict, resamples: int = 200,
                 seed: int = 0, reference: str | tuple[str, ...] | None = BASELINE) -> BacktestResult:
    """Fit every model of `model_factories` (name -> f(horizon_days) -> unfitted model) at every origin of
    `plan` (a snapshots.Backtest) and score the origin's customers; metrics, per-origin metrics and paired
    intervals against `reference`."""
    if not plan.feasible:
        raise ValueError(f"no strict backtest possible: {plan.note}")
    frame = backtest_rows(training_set, plan.horizon_days)
    test_parts, predictions = [], {name: [] for name in model_factories}
    for origin in plan.origins:
        train = frame[frame["cutoff_date"].isin(plan.training_cutoffs[origin])]
        test = frame[frame["cutoff_date"] == origin]
        if test.empty or train.empty:
            raise ValueError(f"backtest origin {origin}: {len(train)} training rows, {len(test)} test rows "
                             "(is the build's snapshot calendar the plan's?)")
        log.info("backtest origin %s: %d training rows (%d cutoffs), %d test rows", origin, len(train),
                 train["cutoff_date"].nunique(), len(test))
        for name, factory in model_factories.items():
            model = factory(plan.horizon_days).fit(*features_and_target(train))
            predictions[name].append(np.asarray(model.predict(test), float))
        part = pd.DataFrame({"origin": origin, "customer_id": test["customer_id"].astype(str).to_numpy(),
                             "actual": test[TARGET].to_numpy(float)})
        for column in SLICE_COLUMNS:
            if column in test:
                part[column] = test[column].fillna("unknown").astype(str).to_numpy()
        test_parts.append(part)
    rows = pd.concat(test_parts, ignore_index=True)
    result = BacktestResult(plan.horizon_days, list(plan.origins), plan.note, rows,
                            {name: np.concatenate(parts) for name, parts in predictions.items()})
    evaluate(result, resamples, seed, reference)
    return result


def evaluate(result: BacktestResult, resamples: int = 200, seed: int = 0,
             reference: str | tuple[str, ...] | None = BASELINE) -> None:
    """Fill the point metrics (mean over origins), per-origin metrics, bootstrap intervals and each model's
    predictive distribution's coverage (models_ml/spread.py)."""
    from models_ml.spread import evaluate_spread

    for name, p in result.predictions.items():
        per_origin = {}
        for origin in result.origins:
            mask = (result.rows["origin"] == origin).to_numpy()
            per_origin[origin] = point_metrics(result.rows["actual"].to_numpy(float)[mask], p[mask])
        result.per_origin[name] = per_origin
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined at every origin stays NaN
            result.metrics[name] = {m: float(np.nanmean([v[m] for v in per_origin.values()])) for m in POINT_METRICS}
        result.distribution[name] = evaluate_spread(result.rows, p, result.horizon_days)
    if resamples:
        result.ci, result.latest_origin_ci = paired_bootstrap_by_origin(result.rows, result.predictions, reference,
                                                                        resamples, seed)
    else:
        result.ci = {name: {} for name in result.predictions}


def slice_table(result: BacktestResult, name: str, column: str, min_customers: int = 100) -> dict[str, dict]:
    """Calibration (predicted / actual) and normalized Gini per slice value with enough customers, pooled
    over origins."""
    if column not in result.rows:
        return {}
    groups = result.rows[column].to_numpy()
    y, p = result.rows["actual"].to_numpy(float), result.predictions[name]
    table = {}
    for group, count in pd.Series(groups).value_counts().items():
        mask = groups == group
        if count < min_customers or y[mask].sum() <= 0:
            continue
        table[str(group)] = {"rows": int(count), "calibration_ratio": calibration_ratio(y[mask], p[mask]),
                             "normalized_gini": normalized_gini(y[mask], p[mask])}
    return table
