"""The one place models go in and out: MLflow tracking and the model registry (aliases, no stages)."""

from __future__ import annotations

import json

import logging
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from models_ml.training import TrainingResult
from models_ml.zoo import build_model, spec_key
from models_ml.metrics import decile_table
from models_ml.model_card import model_card
from models_ml.report import (
    calibration_chart,
    coverage_chart,
    decile_chart,
    fan_chart,
    lorenz_chart,
    shap_summary_chart,
)

log = logging.getLogger(__name__)
EXPERIMENT = "clv-weekly"


@dataclass
class RegisteredModel:
    name: str
    version: str
    run_id: str
    is_champion: bool


EXPERIMENT_TAGS = {
    # the MLflow UI opens a model-development experiment on its runs table, not on the GenAI pages
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "The weekly CLV run's trainings: one run per trained version, with its strict backtest, "
                           "gates, model card, plots and drift baseline (docs/weekly-run.md).",
}


def use_tracking_store(tracking_uri: str, artifact_location: str | None = None) -> None:
    """Point MLflow at a store and make sure the experiment exists (artifacts under artifact_location),
    tagged as a model-development experiment; the store's empty `Default` experiment is archived so the UI
    lists only this one."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location, tags=EXPERIMENT_TAGS)
        _archive_empty_default()
    mlflow.set_experiment(EXPERIMENT)


def _archive_empty_default() -> None:
    client = MlflowClient()
    try:
        default = client.get_experiment("0")
        if default.lifecycle_stage == "active" and not client.search_runs(["0"], max_results=1):
            client.delete_experiment("0")  # a soft delete: the store keeps it, the UI hides it
    except MlflowException:
        pass  # a server that keeps its Default, or none: nothing to tidy


def git_commit() -> str:
    """The commit of the code that trained the model (with `+dirty` for uncommitted changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of a frame's content, logged so a run can be tied to the data it saw. Floats are
    rounded to 9 decimals first, as the models see them: the warehouse sums floats in parallel, in any
    order, so a rebuild of the same data can differ in the last bits."""
    floats = frame.select_dtypes("float").columns
    rounded = frame.assign(**{c: frame[c].round(9) for c in floats}) if len(floats) else frame
    return format(int(pd.util.hash_pandas_object(rounded, index=False).sum()) & (2**64 - 1), "016x")


def log_and_register(result: TrainingResult, training_set: pd.DataFrame, model_name: str,
                     run_params: dict, scoring_population: pd.DataFrame | None = None,
                     recent_orders: pd.DataFrame | None = None) -> RegisteredModel:
    """Log params, backtest metrics with their intervals, the model (with signature) and its drift
    baseline to MLflow and register a new version. Aliases are left to the gates (`record_gates`)."""
    example = training_set[result.model.required_columns()].head(5)
    # numbers as float64: integer columns in a signature reject NULLs at serving time
    example = example.apply(lambda c: c.astype("float64") if pd.api.types.is_numeric_dtype(c) else c)
    signature = infer_signature(example, result.model.predict(example))
    fingerprint = data_fingerprint(training_set)
    description = (f"{result.spec.get('type', 'model')} ({spec_key(result.spec)}) trained on {result.rows_trained:,} "
                   f"customer snapshots (cutoffs {result.train_cutoffs[0]} .. {result.train_cutoffs[-1]}), data through "
                   f"{run_params.get('scoring_cutoff', '')}; type chosen: {result.type_choice.get('why', '-')}")
    with mlflow.start_run(run_name=run_name(result.spec, run_params.get("scoring_cutoff", ""), fingerprint),
                          description=description[:5000]) as run:
        with warnings.catch_warnings():  # the dataset's schema: integer counts are integers, NULLs do not reach it
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
            dataset = mlflow.data.from_pandas(training_set, name="customer_training_set", digest=fingerprint[:36])
        mlflow.log_input(dataset, context="training")
        mlflow.log_params({**{f"xgb_{k}": v for k, v in result.params.items()}, **run_params})
        mlflow.log_params({
            "train_cutoffs": ",".join(result.train_cutoffs),
            "backtest_origins": result.holdout_cutoff or "none",
            "backtest_horizon_days": result.backtest.horizon_days if result.backtest else "none",
            "feature_count": len(result.feature_columns),
        })
        mlflow.log_metrics({f"backtest_{k}": v for k, v in result.holdout_metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({f"baseline_last_year_{k}": v for k, v in result.baseline_metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({"rows_trained": result.rows_trained, "rows_backtest": result.rows_holdout})
        mlflow.set_tags({"training_data_hash": fingerprint, "model_spec": spec_key(result.spec),
                         "data_through": str(run_params.get("scoring_cutoff", "")),
                         "evaluation_protocol": (f"rolling-origin backtest, strictly out of time, origins "
                                                 f"{result.holdout_cutoff}, horizon {result.backtest.horizon_days} days"
                                                 if result.backtest else "none: data too short")})
        mlflow.log_dict({"features": result.feature_columns}, "feature_columns.json")
        mlflow.log_dict(json_safe({"type_choice": result.type_choice, "fallback": result.fallback}), "choice.json")
        mlflow.set_tags({"model_type": result.spec["type"], "type_choice": str(result.type_choice.get("why", ""))[:5000],
                         "fallback": result.fallback["type"], "fallback_why": str(result.fallback.get("why", ""))[:5000]})
        if result.backtest is not None:
            mlflow.log_dict(json_safe(result.backtest.summary()), "backtest.json")
        for which, record in ((MODEL_DISTRIBUTION, result.predictive), (FALLBACK_DISTRIBUTION, result.fallback_predictive)):
            if record is not None:
                mlflow.log_dict(json_safe(record), which)
        if result.predictive is not None:
            checked = result.predictive["checked"]
            mlflow.log_metrics({f"backtest_interval_{k}": v for k, v in checked.items()
                                if isinstance(v, float) and np.isfinite(v)})
        if scoring_population is not None:
            fallback = build_model(result.fallback["spec"], result.horizon_days).fit(pd.DataFrame(), [])
            log_drift_baseline(result.model, scoring_population, recent_orders, fallback=fallback)
        commit = git_commit()
        mlflow.set_tag("git_commit", commit)
        mlflow.log_text(model_card(result, model_name, int(run_params.get("horizon_days", 365)), commit, fingerprint),
                        "model_card.md")
        if result.holdout is not None:
            holdout = result.holdout
            mlflow.log_text(lorenz_chart(holdout["actual"].to_numpy(float), {"model": holdout["predicted"].to_numpy(float)}),
                            "plots/lorenz.svg")
            deciles = decile_table(holdout["actual"], holdout["predicted"])
            mlflow.log_text(decile_chart(model_name, deciles), "plots/deciles.svg")
            mlflow.log_text(calibration_chart({model_name: deciles}, model_name), "plots/calibration.svg")
        if result.predictive is not None:
            checked = result.backtest.distribution.get("candidate", {})
            if checked.get("by_decile"):
                mlflow.log_text(coverage_chart({model_name: checked["by_decile"]}, model_name), "plots/coverage_by_decile.svg")
            mlflow.log_text(fan_chart(result.predictive["forecast_backtest"].get("all", [])), "plots/base_forecast.svg")
        explained = scoring_population if scoring_population is not None else latest_cutoff_rows(training_set)
        if hasattr(result.model, "explain") or hasattr(result.model, "contributions"):
            mlflow.log_text(shap_summary_chart(result.model, explained), "plots/shap_summary.svg")
        info = mlflow.pyfunc.log_model(name="model", python_model=CLVModelWrapper(result.model),
                                       signature=signature, input_example=example)
        version = mlflow.register_model(info.model_uri, model_name)
    client = MlflowClient()
    if run_params.get("warehouse") and "warehouse" not in client.get_registered_model(model_name).tags:
        # the registry serves this warehouse's scores only (clv.store_check refuses another one)
        client.set_registered_model_tag(model_name, "warehouse", run_params["warehouse"])
    client.update_registered_model(model_name, description=(
        f"Predicted customer spend over the next {run_params.get('horizon_days', 365)} days, per customer "
        "(CLV platform). Versions are trained on month-end feature snapshots and gated against last year's "
        "spend; the `champion` alias is what the weekly run serves."))
    client.update_model_version(model_name, version.version, description=(
        f"{result.spec.get('type', 'model')} trained on {result.rows_trained:,} customer snapshots, cutoffs "
        f"{result.train_cutoffs[0]} .. {result.train_cutoffs[-1]} (data through {run_params.get('scoring_cutoff', '')}, "
        f"training data {fingerprint[:12]}); gate outcome: pending"))
    for key, value in {"training_data_hash": fingerprint, "model_spec": spec_key(result.spec),
                       "data_through": str(run_params.get("scoring_cutoff", "")),
                       "fallback_spec": json.dumps(result.fallback["spec"], sort_keys=True),
                       "fallback_why": str(result.fallback.get("why", ""))[:5000]}.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    for key, value in result.holdout_metrics.items():
        client.set_model_version_tag(model_name, version.version, f"backtest_{key}", f"{value:.6g}")
    return RegisteredModel(model_name, str(version.version), run.info.run_id, False)


def latest_cutoff_rows(training_set: pd.DataFrame) -> pd.DataFrame:
    """The customers at the latest cutoff of a training set (what the SHAP summary explains when no
    scoring population is given)."""
    cutoffs = pd.to_datetime(training_set["cutoff_date"])
    return training_set[cutoffs == cutoffs.max()]


def run_name(spec: dict, cutoff, fingerprint: str) -> str:
    """A run name that tells runs apart in the MLflow UI: model type, a hash of its configuration (two
    configurations of one type differ), data cutoff, training-data hash."""
    import hashlib

    configuration = hashlib.sha1(spec_key(spec).encode()).hexdigest()[:6]
    return f"{spec.get('type', 'model')}-{configuration}-{cutoff}-{fingerprint[:8]}"


def json_safe(value):
    """Plain JSON types (numpy numbers, NaN -> None) for MLflow dicts and reports."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def find_version(model_name: str, data_hash: str, spec: dict) -> str | None:
    """The latest version trained on exactly this data with this configuration, if any."""
    try:
        versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return None
    key = spec_key(spec)
    # a version never gated (a run killed between registration and gating) does not count: it is trained again
    matches = [int(v.version) for v in versions
               if v.tags.get("training_data_hash") == data_hash and v.tags.get("model_spec") == key
               and v.tags.get("gates") in ("pass", "fail")]
    return str(max(matches)) if matches else None


def feature_columns_of(model_name: str, version: str) -> list[str] | None:
    """The input columns a registered version was trained on (None for a version logged without them)."""
    run_id = MlflowClient().get_model_version(model_name, version).run_id
    try:
        return list(mlflow.artifacts.load_dict(f"runs:/{run_id}/feature_columns.json")["features"]) or None
    except (MlflowException, OSError, KeyError):
        return None


MODEL_DISTRIBUTION, FALLBACK_DISTRIBUTION = "predictive_distribution.json", "fallback_predictive_distribution.json"


def predictive_record(model_name: str, version: str, which: str = MODEL_DISTRIBUTION) -> dict | None:
    """The predictive distribution a version logged for its model (or, `FALLBACK_DISTRIBUTION`, for the
    fallback it chose): training.predictive_record's dict, or None (no backtest, or an older version)."""
    try:
        run_id = MlflowClient().get_model_version(model_name, version).run_id
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{which}")
    except (MlflowException, OSError):
        return None


def latest_fallback(model_name: str) -> tuple[dict, str] | None:
    """The fallback the latest gated version chose (its spec, and why), or None before any."""
    found = latest_fallback_version(model_name)
    return (found[1], found[2]) if found else None


def latest_fallback_version(model_name: str) -> tuple[str, dict, str] | None:
    """(version, fallback spec, why) of the latest version that chose a fallback, or None."""
    chosen = _fallback_versions(model_name)
    if not chosen:
        return None
    latest = chosen[-1]
    return str(latest.version), json.loads(latest.tags["fallback_spec"]), latest.tags.get("fallback_why", "")


def fallback_watched_since(model_name: str) -> str | None:
    """The version whose scoring population the served fallback is watched against: the first of the latest
    run of versions that chose the same fallback type (retraining while no model passes registers a version
    each month; the watch must not restart with each of them)."""
    chosen = _fallback_versions(model_name)
    if not chosen:
        return None
    served = json.loads(chosen[-1].tags["fallback_spec"])["type"]
    since = chosen[-1]
    for version in reversed(chosen):
        if json.loads(version.tags["fallback_spec"])["type"] != served:
            break
        since = version
    return str(since.version)


def _fallback_versions(model_name: str) -> list:
    try:
        versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return []
    return sorted((v for v in versions if "fallback_spec" in v.tags), key=lambda v: int(v.version))


def version_tags(model_name: str, version: str) -> dict:
    return dict(MlflowClient().get_model_version(model_name, version).tags)


def make_champion(model_name: str, version: str, who: str = "clv (gates)", reason: str = "first version passing the gates",
                  alias: str = "champion", force: bool = False) -> None:
    """Point the champion alias at a version (the first one that passed the gates; `force`: any version)."""
    promote(model_name, version, who, reason, alias, force=force)


BASELINE_ARTIFACT = "baseline/scoring_population.parquet"
RECENT_ORDERS_ARTIFACT = "baseline/recent_orders.parquet"


def log_drift_baseline(model, scoring_population: pd.DataFrame, recent_orders: pd.DataFrame | None = None,
                       max_rows: int = 50_000, fallback=None) -> None:
    """What drift monitoring compares against once this version is champion (or while the fallback it chose
    serves): a seeded sample of its own scoring population (features at its scoring cutoff) with its
    out-of-sample predictions (and the fallback's, `predicted_fallback`), and the orders of the week before
    that cutoff."""
    sample = scoring_population.sample(min(len(scoring_population), max_rows), random_state=0)
    sample = sample.sort_values("customer_id", kind="mergesort")
    columns = [*model.required_columns(), *(fallback.required_columns() if fallback is not None else [])]
    baseline = sample[[c for c in dict.fromkeys(columns) if c in sample.columns]].copy()
    baseline["predicted"] = model.predict(sample)
    if fallback is not None:
        baseline["predicted_fallback"] = np.asarray(fallback.predict(sample), float)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scoring_population.parquet"
        baseline.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="baseline")
        if recent_orders is not None:
            path = Path(tmp) / "recent_orders.parquet"
            recent_orders.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="baseline")


def load_drift_baseline(model_name: str, version: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The drift baseline (scoring population, recent orders) logged by the run that registered a version."""
    run_id = MlflowClient().get_model_version(model_name, version).run_id
    population = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=BASELINE_ARTIFACT))
    try:
        orders = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=RECENT_ORDERS_ARTIFACT))
    except (MlflowException, OSError):
        orders = None
    return population, orders


def champion_version(model_name: str, alias: str = "champion") -> str | None:
    """The version the alias points at, or None when the model or the alias does not exist."""
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def load_model_by_alias(model_name: str, alias: str = "champion"):
    """The aliased CLV model object (fit/predict/contributions), its version and the columns it reads."""
    version = champion_version(model_name, alias)
    if version is None:
        raise LookupError(f"registered model {model_name!r} has no {alias!r} alias: train and register a model first")
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{alias}").unwrap_python_model().model
    return model, version, model.required_columns()


class CLVModelWrapper(mlflow.pyfunc.PythonModel):
    """Serves any model of the zoo through MLflow: input = customer_features columns, output = predicted
    horizon revenue. `unwrap_python_model().model` gives the model object back (for SHAP reasons)."""

    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.model.predict(model_input)


HISTORY_TAG = "champion_history"  # on the registered model: versions that held the alias, oldest first


def _champion_history(client: MlflowClient, model_name: str) -> list[str]:
    tags = client.get_registered_model(model_name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


class UngatedVersionError(LookupError):
    """A promotion of a version that did not pass the gates, without `force`."""


def promote(model_name: str, version: str, who: str, reason: str, alias: str = "champion",
            force: bool = False) -> str | None:
    """Point the alias at `version`, recording who, when and why on the version; returns the previous
    champion version (None when there was none). A version that did not pass every gate is refused unless
    `force` (recorded on the version)."""
    client = MlflowClient()
    gates = client.get_model_version(model_name, version).tags.get("gates")  # raises when it does not exist
    if gates != "pass" and not force:
        raise UngatedVersionError(
            f"{model_name} version {version} {'failed its gates' if gates == 'fail' else 'was never gated'}: "
            "promote it anyway with --force (recorded on the version), or train and gate a new version")
    previous = champion_version(model_name, alias)
    history = _champion_history(client, model_name) or ([previous] if previous else [])
    client.set_registered_model_alias(model_name, alias, version)
    client.set_registered_model_tag(model_name, HISTORY_TAG, ",".join([*history, str(version)]))
    if gates != "pass":
        client.set_model_version_tag(model_name, version, "promoted_without_passing_gates", "true")
    for key, value in {"promoted_by": who, "promotion_reason": reason, "previous_champion": previous or "none",
                       "promoted_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}.items():
        client.set_model_version_tag(model_name, version, key, value)
    log.info("%s: %s moved from version %s to %s by %s (%s)", model_name, alias, previous, version, who, reason)
    return previous


def rollback(model_name: str, who: str, reason: str, alias: str = "champion") -> str:
    """Give the alias back to the version that held it before the current one; returns that version."""
    client = MlflowClient()
    history = _champion_history(client, model_name)
    current = champion_version(model_name, alias)
    if current is None or len(history) < 2 or history[-1] != current:
        raise LookupError(f"{model_name}: no previous {alias} to roll back to (history: {history or 'empty'})")
    restored = history[-2]
    client.set_registered_model_alias(model_name, alias, restored)
    client.set_registered_model_tag(model_name, HISTORY_TAG, ",".join(history[:-1]))
    client.set_model_version_tag(model_name, current, "rolled_back_by", who)
    client.set_model_version_tag(model_name, current, "rollback_reason", reason)
    log.info("%s: %s rolled back from version %s to %s by %s (%s)", model_name, alias, current, restored, who, reason)
    return restored


def record_gates(model_name: str, version: str, run_id: str, gates: list[dict], passed: bool, outcome: str,
                 challenger_alias: str = "challenger") -> None:
    """Store the gate results on the version (tags) and the run (gates.json); point the challenger alias at
    the version when `outcome` is "challenger"."""
    client = MlflowClient()
    for gate in gates:
        client.set_model_version_tag(model_name, version, f"gate_{gate['gate']}", "pass" if gate["passed"] else "fail")
    client.set_model_version_tag(model_name, version, "gates", "pass" if passed else "fail")
    client.set_model_version_tag(model_name, version, "gate_outcome", outcome)
    described = client.get_model_version(model_name, version).description or ""
    client.update_model_version(model_name, version, description=described.replace(
        "gate outcome: pending", f"gate outcome: {outcome} ({sum(g['passed'] for g in gates)} of {len(gates)} gates passed)"))
    client.log_dict(run_id, json_safe({"passed": passed, "outcome": outcome, "gates": gates}), "gates.json")
    if outcome == "challenger":
        client.set_registered_model_alias(model_name, challenger_alias, version)
