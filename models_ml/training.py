"""Training a served model: the strict backtest of its configuration (against last year's spend and the
champion's configuration, refit on the same cutoffs), then the fit on every snapshot labelled at the
prediction horizon."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_ml import zoo
from models_ml.base import features_and_target
from models_ml.protocol import BASELINE, BacktestResult, backtest_rows, run_backtest

log = logging.getLogger(__name__)
CANDIDATE, CHAMPION = "candidate", "champion"


@dataclass
class TrainingResult:
    model: object
    spec: dict
    feature_columns: list[str]
    params: dict
    horizon_days: int
    train_cutoffs: list[str]  # the snapshots the served model was fit on
    rows_trained: int = 0
    backtest: BacktestResult | None = None
    champion_spec: dict | None = None
    # backtest rows with truth, the candidate's prediction and slice columns (plots, model card)
    holdout: pd.DataFrame | None = None
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def holdout_cutoff(self) -> str | None:
        return ",".join(self.backtest.origins) if self.backtest else None

    @property
    def rows_holdout(self) -> int:
        return len(self.backtest.rows) if self.backtest else 0


def serving_rows(training_set: pd.DataFrame, horizon_days: int, cutoffs=None) -> pd.DataFrame:
    """Snapshots labelled at the prediction horizon (optionally only the given cutoffs), in a fixed order."""
    rows = backtest_rows(training_set, horizon_days)
    if cutoffs is not None:
        rows = rows[rows["cutoff_date"].isin([str(c) for c in cutoffs])]
    if rows.empty:
        raise ValueError(f"no training snapshot has a full {horizon_days}-day label window: the data are too short "
                         f"to train a {horizon_days}-day model (add history or shorten --horizon-days)")
    return rows.reset_index(drop=True)


def fit_serving_model(rows: pd.DataFrame, spec: dict, horizon_days: int, history_length_dependent=()):
    return zoo.build_model(spec, horizon_days, history_length_dependent).fit(*features_and_target(rows))


def train_and_evaluate(training_set: pd.DataFrame, plan, spec: dict | None = None, champion_spec: dict | None = None,
                       resamples: int = 200, fit=None, history_length_dependent=()) -> TrainingResult:
    """Backtest `spec` (and the champion's spec when it differs) with last year's spend on the plan's strict
    protocol, then fit `spec` on the serving snapshots (`fit(rows, spec, horizon, history_length_dependent)`
    may fit elsewhere, e.g. a SageMaker training job). `history_length_dependent`: the feature columns the
    offset model leaves out (`clv.dbt_manifest`)."""
    spec = spec or zoo.default_spec()
    rows = serving_rows(training_set, plan.horizon_days, plan.serving_cutoffs or None)
    backtest = None
    if plan.backtest.feasible:
        factories = {CANDIDATE: zoo.factory(spec, history_length_dependent),
                     BASELINE: zoo.factory({"type": BASELINE})}
        if champion_spec is not None and zoo.spec_key(champion_spec) != zoo.spec_key(spec):
            factories[CHAMPION] = zoo.factory(champion_spec, history_length_dependent)
        backtest = run_backtest(training_set, plan.backtest, factories, resamples=resamples)
    else:
        log.warning("no strict backtest: %s", plan.backtest.note)
    model = (fit or fit_serving_model)(rows, spec, plan.horizon_days, tuple(history_length_dependent))
    holdout, metrics, baseline = None, {}, {}
    if backtest is not None:
        holdout = backtest.rows.assign(predicted=backtest.predictions[CANDIDATE])
        metrics = {**backtest.metrics[CANDIDATE],
                   **{f"{k}_ci_low": v[0] for k, v in backtest.ci[CANDIDATE].items() if "diff" not in k},
                   **{f"{k}_ci_high": v[1] for k, v in backtest.ci[CANDIDATE].items() if "diff" not in k}}
        baseline = dict(backtest.metrics[BASELINE])
    params = dict(getattr(model, "params", None) or {})
    return TrainingResult(
        model=model, spec=spec, feature_columns=list(getattr(model, "columns_", [])),
        params={**params, "model": spec["type"]}, horizon_days=plan.horizon_days,
        train_cutoffs=sorted(rows["cutoff_date"].unique()), rows_trained=len(rows), backtest=backtest,
        champion_spec=champion_spec, holdout=holdout, holdout_metrics=metrics, baseline_metrics=baseline,
    )


def same_predictions(backtest: BacktestResult, a: str = CANDIDATE, b: str = CHAMPION) -> bool:
    return a in backtest.predictions and b in backtest.predictions and bool(
        np.array_equal(backtest.predictions[a], backtest.predictions[b]))
