"""The one evaluation protocol: a rolling-origin backtest, strictly out of time, with paired bootstrap
intervals. The weekly run, the promotion gates and `clv bench accuracy` all use it.

At each origin every model is fit on the training cutoffs whose label window ends on or before the
origin (the plan from clv/snapshots.py) and scored on the customers known at the origin. Metrics are the
mean over origins of each origin's value. Intervals come from a paired bootstrap that resamples
customers (a customer's rows at every origin move together, so repeated customers do not shrink the
interval) and applies the same resample to every model, so a difference's interval is paired.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_ml.base import features_and_target
from models_ml.features import TARGET
from models_ml.metrics import calibration_ratio, mae, normalized_gini

log = logging.getLogger(__name__)
HEADLINE_METRICS = ("mae", "normalized_gini", "calibration_ratio")
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

    def difference(self, model: str, reference: str, metric: str) -> dict:
        """Point difference (model - reference, mean over origins) and its paired 95% interval."""
        point = self.metrics[model][metric] - self.metrics[reference][metric]
        low, high = self.ci[model].get(f"{metric}_diff_vs_{reference}", [np.nan, np.nan])
        return {"difference": point, "ci": [low, high]}

    def summary(self) -> dict:
        return {"horizon_days": self.horizon_days, "origins": self.origins, "note": self.note,
                "rows": len(self.rows), "metrics": self.metrics, "ci": self.ci, "per_origin": self.per_origin}


def _weighted_gini(y: np.ndarray, w: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Gini of the gain curve for each weight vector (rows of w), customers taken in `order`.
    With unit weights this is metrics._gini."""
    y, w = y[order], w[:, order]
    wy = w * y
    cum_y = np.cumsum(wy, axis=1) / wy.sum(axis=1, keepdims=True)
    total = w.sum(axis=1, keepdims=True)
    cum_w = np.cumsum(w, axis=1) / total
    return ((w / total) * (cum_y - cum_w)).sum(axis=1)


def weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray, truth_order: np.ndarray | None = None) -> dict:
    """MAE, normalized Gini and calibration ratio under each row of weights w (shape B x n)."""
    truth_order = np.argsort(-y, kind="mergesort") if truth_order is None else truth_order
    order = np.argsort(-p, kind="mergesort")
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "mae": (w * np.abs(y - p)).sum(axis=1) / total,
            "normalized_gini": _weighted_gini(y, w, order) / _weighted_gini(y, w, truth_order),
            "calibration_ratio": (w * p).sum(axis=1) / (w * y).sum(axis=1),
        }


def point_metrics(y, p) -> dict[str, float]:
    return {"mae": mae(y, p), "normalized_gini": normalized_gini(y, p), "calibration_ratio": calibration_ratio(y, p)}


def paired_bootstrap(rows: pd.DataFrame, predictions: dict[str, np.ndarray],
                     reference: str | tuple[str, ...] | None = BASELINE,
                     resamples: int = 200, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """95% percentile intervals of each model's metrics and of each model-minus-reference difference (one
    reference or several), resampling customers (all their origins together), the same resamples for every
    model."""
    rng = np.random.default_rng(seed)
    customers, customer_index = np.unique(rows["customer_id"].astype(str).to_numpy(), return_inverse=True)
    origins = rows["origin"].to_numpy()
    y = rows["actual"].to_numpy(float)
    draws: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in HEADLINE_METRICS} for name in predictions}
    by_origin = [(np.flatnonzero(origins == o)) for o in pd.unique(origins)]
    truth_orders = [np.argsort(-y[idx], kind="mergesort") for idx in by_origin]
    chunk = int(max(1, min(25, 5_000_000 // max(len(rows), 1))))  # bounded memory: chunk x rows weights
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = rng.multinomial(len(customers), np.full(len(customers), 1 / len(customers)), size=b).astype(float)
        weights = counts[:, customer_index]
        for name, p in predictions.items():
            per_origin = [weighted_metrics(y[idx], p[idx], weights[:, idx], order)
                          for idx, order in zip(by_origin, truth_orders)]
            for metric in HEADLINE_METRICS:
                draws[name][metric].append(np.nanmean([m[metric] for m in per_origin], axis=0))
    stacked = {name: {m: np.concatenate(v) for m, v in d.items()} for name, d in draws.items()}
    intervals: dict[str, dict[str, list[float]]] = {}
    for name, values in stacked.items():
        intervals[name] = {m: _interval(v) for m, v in values.items()}
        for other in ((reference,) if isinstance(reference, str) else reference or ()):
            if other in stacked and name != other:
                for metric in HEADLINE_METRICS:
                    intervals[name][f"{metric}_diff_vs_{other}"] = _interval(values[metric] - stacked[other][metric])
    return intervals


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
                 seed: int = 0, reference: str | None = BASELINE) -> BacktestResult:
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
    """Fill the point metrics (mean over origins), per-origin metrics and bootstrap intervals."""
    for name, p in result.predictions.items():
        per_origin = {}
        for origin in result.origins:
            mask = (result.rows["origin"] == origin).to_numpy()
            per_origin[origin] = point_metrics(result.rows["actual"].to_numpy(float)[mask], p[mask])
        result.per_origin[name] = per_origin
        result.metrics[name] = {m: float(np.nanmean([v[m] for v in per_origin.values()])) for m in HEADLINE_METRICS}
    result.ci = paired_bootstrap(result.rows, result.predictions, reference, resamples, seed) if resamples else {
        name: {} for name in result.predictions}


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
