"""One evaluation harness for every model: a strict temporal holdout and the same metrics, side by side,
overall and by customer slice."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_ml.features import TARGET
from models_ml.metrics import decile_table, disparate_impact_ratio, full_report

log = logging.getLogger(__name__)
SUPERVISED = {"heuristic", "linear", "xgboost", "hybrid", "xgboost_tuned", "xgboost_offset"}


def strict_temporal_split(frame: pd.DataFrame, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test = the latest cutoff; train = cutoffs whose label window ends on or before the test cutoff,
    so no training label overlaps the test period."""
    cutoffs = pd.to_datetime(frame["cutoff_date"])
    test_cutoff = cutoffs.max()
    train = frame[cutoffs + pd.Timedelta(days=horizon_days) <= test_cutoff]
    return train, frame[cutoffs == test_cutoff]


@dataclass
class ModelEvaluation:
    name: str
    metrics: dict[str, float]
    deciles: pd.DataFrame
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    disparate_impact: dict[str, float] = field(default_factory=dict)
    predictions: np.ndarray | None = None
    model: object = None


def evaluate_models(models: list, train: pd.DataFrame, test: pd.DataFrame,
                    slice_columns=("country", "acquisition_channel"), min_slice_size: int = 30) -> dict[str, ModelEvaluation]:
    """Fit each model on `train` (supervised ones are skipped when it is empty), predict `test`, and
    report the same metrics for all."""
    y = test[TARGET].to_numpy(float)
    results = {}
    for model in models:
        if model.name in SUPERVISED and train.empty:
            log.warning("%s skipped: no labelled training period before the test cutoff", model.name)
            continue
        log.info("evaluating %s", model.name)
        model.fit(train)
        predictions = np.asarray(model.predict(test), float)
        evaluation = ModelEvaluation(model.name, full_report(y, predictions), decile_table(y, predictions),
                                     predictions=predictions, model=model)
        for column in slice_columns:
            if column not in test or test[column].isna().all():
                continue
            groups = test[column].fillna("unknown").to_numpy()
            big = [g for g, n in pd.Series(groups).value_counts().items() if n >= min_slice_size]
            evaluation.slices[column] = {
                str(g): {**full_report(y[groups == g], predictions[groups == g]), "customers": int((groups == g).sum())}
                for g in big
            }
            kept = np.isin(groups, big)
            evaluation.disparate_impact[column] = disparate_impact_ratio(predictions[kept], groups[kept])
        results[model.name] = evaluation
    return results
