"""Training a served model: the strict backtest of the candidate types (against the label-free fallbacks
and the champion's configuration, all refit on the same cutoffs), the choice of the type and of the
fallback from it, then the fit of the chosen type on every snapshot labelled at the prediction horizon."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models_ml import base_forecast, zoo
from models_ml.base import features_and_target
from models_ml.gates import GateConfig, choose_fallback, evaluate_gates, label_of
from models_ml.protocol import BASELINE, BacktestResult, backtest_rows, run_backtest
from models_ml.spread import fit_on_backtest

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
    # how the type was chosen: {"chosen", "runner_up", "difference", "rule", "why"}
    type_choice: dict = field(default_factory=dict)
    # the label-free model served while no trained model passes: {"type", "spec", "why"}
    fallback: dict = field(default_factory=lambda: {"type": BASELINE, "spec": {"type": BASELINE, "params": {}},
                                                    "why": "no backtest: last year's spend"})
    # the served model's and the fallback's predictive distributions (`predictive_record`), None without a backtest
    predictive: dict | None = None
    fallback_predictive: dict | None = None

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


def choose_type(backtest: BacktestResult, names: list[str], keep: str, failed_gates: dict[str, list[str]] | None = None) -> dict:
    """The candidate type to serve: among the types that pass every gate (all of them when none does), the
    one with the lowest Poisson deviance, unless its paired interval against `keep` (the champion's type,
    else the default), when `keep` passes too, includes zero: a tie keeps `keep`. `failed_gates`: each
    type's failed gates (none: every type passes)."""
    failed_gates = failed_gates or {}
    passing = {n: not failed_gates.get(n) for n in names}
    pool = [n for n in names if passing.get(n)] or list(names)
    ranked = sorted(pool, key=lambda n: backtest.metrics[n]["deviance"])
    best = ranked[0]
    rule = ("among the types passing every gate, the lowest Poisson deviance over the backtest's origins; the "
            "current type is kept unless another's paired 95% interval against it lies below zero")
    failed = [f"{n} failed {', '.join(failed_gates[n])}" for n in names if not passing.get(n)]
    note = f" ({'; '.join(failed)})" if failed and len(failed) < len(names) else (
        f" (every type failed a gate: {'; '.join(failed)})" if failed else "")
    if len(names) == 1:
        return {"chosen": best, "runner_up": None, "difference": None, "rule": rule,
                "why": "the only type backtested" + note}
    runner_up = next((n for n in sorted(names, key=lambda n: backtest.metrics[n]["deviance"]) if n != best), None)
    if best != keep and keep in pool:
        difference = backtest.difference(best, keep, "deviance")
        if not difference["ci"][1] < 0:
            return {"chosen": keep, "runner_up": best, "difference": difference, "rule": rule,
                    "why": f"{best} ties {keep} (deviance difference {difference['difference']:+,.2f} "
                           f"[{difference['ci'][0]:+,.2f}, {difference['ci'][1]:+,.2f}]): {keep} kept" + note}
    difference = backtest.difference(best, runner_up, "deviance")
    return {"chosen": best, "runner_up": runner_up, "difference": difference, "rule": rule,
            "why": f"{best}: deviance {backtest.metrics[best]['deviance']:,.2f} vs {runner_up} "
                   f"{backtest.metrics[runner_up]['deviance']:,.2f}, difference {difference['difference']:+,.2f} "
                   f"[{difference['ci'][0]:+,.2f}, {difference['ci'][1]:+,.2f}]" + note}


def as_candidate(backtest: BacktestResult, name: str) -> BacktestResult:
    """A view of the backtest with model `name` as CANDIDATE (its predictions, metrics and intervals; the
    other models' intervals against it renamed to match), the other candidate types left as they are."""
    def renamed(table: dict) -> dict:
        out = {CANDIDATE if k == name else k: v for k, v in table.items() if k != CANDIDATE}
        return out

    def renamed_intervals(table: dict) -> dict:
        return {model: {k.replace(f"_diff_vs_{name}", f"_diff_vs_{CANDIDATE}"): v for k, v in intervals.items()}
                for model, intervals in renamed(table).items()}

    return BacktestResult(backtest.horizon_days, backtest.origins, backtest.note, backtest.rows,
                          renamed(backtest.predictions), renamed(backtest.metrics), renamed_intervals(backtest.ci),
                          renamed(backtest.per_origin), renamed_intervals(backtest.latest_origin_ci),
                          renamed(backtest.distribution))


def predictive_record(backtest: BacktestResult, name: str) -> dict:
    """What scoring needs to publish model `name`'s distributions and the base's forecast: the spread
    learned on every backtest origin, each origin's totals by scope, and how both held out of time."""
    predicted = backtest.predictions[name]
    spread = fit_on_backtest(backtest.rows, predicted, backtest.horizon_days)
    totals = base_forecast.origin_totals(backtest.rows, predicted, spread)
    return {"spread": spread.to_dict(), "origin_totals": totals,
            "checked": backtest.distribution.get(name, {}).get("overall", {}),
            "forecast_backtest": base_forecast.backtest_forecast(totals)}


def fitted_fallback(rows: pd.DataFrame, name: str, horizon_days: int) -> dict:
    """The fallback's spec as served: fitted on the serving rows (last year's spend's factor), else as is."""
    model = zoo.build_model({"type": name}, horizon_days).fit(*features_and_target(rows))
    return zoo.spec_of(model)


def train_and_evaluate(training_set: pd.DataFrame, plan, spec: dict | None = None, champion_spec: dict | None = None,
                       resamples: int = 200, fit=None, history_length_dependent=(),
                       candidate_specs: list[dict] | None = None, gate_config: dict | None = None) -> TrainingResult:
    """Backtest the candidate types (`spec` alone, else `candidate_specs`, else the zoo's default
    candidates), the label-free fallbacks and the champion's configuration (on its own input columns) on
    the plan's strict protocol; choose the fallback (`gates.choose_fallback`), then the type (`choose_type`,
    each type gated as the candidate with `gate_config`);
    then fit the chosen type on the serving snapshots (`fit(rows, spec, horizon, history_length_dependent)`
    may fit elsewhere, e.g. a SageMaker training job). `history_length_dependent`: the feature columns the
    offset model leaves out (`clv.dbt_manifest`)."""
    specs = [spec] if spec is not None else list(candidate_specs or zoo.candidate_specs())
    rows = serving_rows(training_set, plan.horizon_days, plan.serving_cutoffs or None)
    keep = (champion_spec or {}).get("type") or specs[0]["type"]
    backtest, type_choice = None, {"chosen": specs[0]["type"], "why": "no strict backtest: not compared"}
    fallback_name, fallback_why = BASELINE, "no strict backtest: last year's spend"
    if plan.backtest.feasible:
        factories = {s["type"]: zoo.factory(s, history_length_dependent) for s in specs}
        fallbacks = [name for name in zoo.FALLBACK_TYPES  # those whose inputs the feature table has
                     if set(zoo.build_model({"type": name}, plan.horizon_days).required_columns()) <= set(training_set)]
        factories.update({name: zoo.factory({"type": name}) for name in fallbacks if name not in factories})
        if champion_spec is not None:
            factories[CHAMPION] = zoo.factory(champion_spec, history_length_dependent)
        backtest = run_backtest(training_set, plan.backtest, factories, resamples=resamples,
                                reference=tuple(factories))
        fallback_name, fallback_why = choose_fallback(backtest, fallbacks)
        config = GateConfig(**(gate_config or {}))
        failed = {s["type"]: [g.gate for g in evaluate_gates(as_candidate(backtest, s["type"]), champion_spec is not None,
                                                             config=config, fallback=fallback_name) if not g.passed]
                  for s in specs}
        type_choice = choose_type(backtest, [s["type"] for s in specs], keep, failed)
        backtest = as_candidate(backtest, type_choice["chosen"])
    else:
        log.warning("no strict backtest: %s", plan.backtest.note)
    spec = next(s for s in specs if s["type"] == type_choice["chosen"])
    model = (fit or fit_serving_model)(rows, spec, plan.horizon_days, tuple(history_length_dependent))
    holdout, metrics, baseline, predictive, fallback_predictive = None, {}, {}, None, None
    if backtest is not None:
        predictive, fallback_predictive = predictive_record(backtest, CANDIDATE), predictive_record(backtest, fallback_name)
        holdout = backtest.rows.assign(predicted=backtest.predictions[CANDIDATE])
        metrics = {**backtest.metrics[CANDIDATE],
                   **{f"{k}_ci_low": v[0] for k, v in backtest.ci[CANDIDATE].items() if "diff" not in k},
                   **{f"{k}_ci_high": v[1] for k, v in backtest.ci[CANDIDATE].items() if "diff" not in k}}
        baseline = dict(backtest.metrics[BASELINE])
    params = dict(getattr(model, "params", None) or {})
    fallback = {"type": fallback_name, "label": label_of(fallback_name), "why": fallback_why,
                "spec": fitted_fallback(rows, fallback_name, plan.horizon_days)}
    return TrainingResult(
        model=model, spec=spec, feature_columns=list(getattr(model, "columns_", [])),
        params={**params, "model": spec["type"]}, horizon_days=plan.horizon_days,
        train_cutoffs=sorted(rows["cutoff_date"].unique()), rows_trained=len(rows), backtest=backtest,
        champion_spec=champion_spec, holdout=holdout, holdout_metrics=metrics, baseline_metrics=baseline,
        type_choice=type_choice, fallback=fallback, predictive=predictive, fallback_predictive=fallback_predictive,
    )


def same_predictions(backtest: BacktestResult, a: str = CANDIDATE, b: str = CHAMPION) -> bool:
    return a in backtest.predictions and b in backtest.predictions and bool(
        np.array_equal(backtest.predictions[a], backtest.predictions[b]))
