"""The weekly CLV cycle: land -> dbt build -> train -> register -> score.

Each step is a Prefect task that calls library code in `clv/` and `models_ml/`; the flow reads like
the runbook. Run it with `clv run` (no Prefect server needed) or as the `weekly-clv` deployment.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE

from clv import config, sagemaker_jobs, server_warehouse
from clv.storage import Storage
from clv.landing import DuckDBRawSink, ensure_raw_tables
from clv.sources import FileSource, PostgresSource, land_sources, load_sources
from clv.validation import InputValidationError, reports_markdown, write_report
from clv.postgres import PostgresRawSink
from clv.transform import dbt_vars, run_dbt
from clv.warehouse import connect, connect_in_memory, publish_scores, read_table, scoring_cutoff
from models_ml import registry
from models_ml.gradient_boosting import TrainingResult, train_with_temporal_holdout
from models_ml.btyd import BgNbdGammaGamma
from models_ml.gates import GateConfig, as_dicts, evaluate_gates, gates_passed
from models_ml.scoring import build_score_table, reasons_in_batches


def input_sources(orders: str | None, customers: str | None, events: str | None,
                  sources: str | None) -> list[FileSource | PostgresSource]:
    """The sources of a run: a sources file, plus any input files given directly; the bundled Online
    Retail II orders when neither is given."""
    listed = load_sources(sources) if sources else []
    if not sources and not orders:
        orders = str(config.BUNDLED_ORDERS)
    listed += [FileSource(entity, entity, str(path)) for entity, path in
               (("orders", orders), ("customers", customers), ("events", events)) if path]
    return listed


@task(cache_policy=NO_CACHE)
def land_inputs(warehouse: str, orders: str | None, customers: str | None, events: str | None,
                target: str = "duckdb", sources: str | None = None) -> list[dict]:
    """Land every input into the raw schema: stage, validate with the Great Expectations suites, then
    commit all of them, or none when a critical expectation fails (the run stops before dbt). The
    validation report is a Prefect artifact and a file under $CLV_HOME/reports. With the postgres
    target, inputs are staged in an in-memory DuckDB and COPied to PostgreSQL."""
    logger = get_run_logger()
    listed = input_sources(orders, customers, events, sources)
    cache_dir = config.project_home() / "landing-cache"
    with connect(warehouse) if target == "duckdb" else connect_in_memory() as con:
        sink = raw_sink(con, target)
        try:
            loaded, reports = land_sources(con, sink, listed, cache_dir)
        except InputValidationError as failure:
            _publish_validation(failure.reports, logger)
            raise
    _publish_validation(reports, logger)
    for result in loaded:
        logger.info("%s: %d rows read, %d new, %d quarantined (%s)", result.entity, result.rows_read,
                    result.rows_inserted, result.rows_quarantined, result.source)
    return [asdict(result) for result in loaded]


WAREHOUSE_SETTINGS = {"postgres": "CLV_PG_*", "redshift": "CLV_REDSHIFT_*"}


def raw_sink(con, target: str):
    """Where landed rows go: the DuckDB file itself, or PostgreSQL (COPY) or Redshift (COPY from S3)."""
    if target == "postgres":
        return PostgresRawSink(con)
    if target == "redshift":
        from clv.redshift import RedshiftRawSink

        return RedshiftRawSink(con)
    return DuckDBRawSink(con)


def read_warehouse(target: str, warehouse: str, relation: str, where: str = "", params=None) -> pd.DataFrame:
    if target == "duckdb":
        with connect(warehouse, read_only=True) as con:
            return read_table(con, relation, where, params)
    return server_warehouse.read_relation(target, relation, where, params)


def _publish_validation(reports, logger) -> None:
    if not reports:
        return
    label = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"
    path = write_report(reports, config.project_home() / "reports", label)
    create_markdown_artifact(key="input-validation", markdown=reports_markdown(reports),
                             description="Great Expectations validation of this run's inputs")
    for report in reports:
        logger.info("validation of %s from %s: %s (%d quarantined)", report.entity, report.source, report.status,
                    sum(report.quarantined.values()))
        for check in report.warnings:
            logger.warning("%s: %s", report.entity, check.describe())
        for check in report.critical_failures:
            logger.error("%s: %s", report.entity, check.describe())
    logger.info("validation report: %s", path)


@task(cache_policy=NO_CACHE)
def build_features(warehouse: str, cutoff: date | None, horizon_days: int, training_snapshots: int,
                   snapshot_spacing_days: int, dbt_target: str = "duckdb",
                   order_value_cap_percentile: float | None = 0.999) -> date:
    """`dbt build`: staging, features at the scoring and training cutoffs, labels, and their tests."""
    variables = dbt_vars(cutoff, horizon_days, training_snapshots, snapshot_spacing_days, order_value_cap_percentile)
    if dbt_target == "duckdb":  # raw tables of an older warehouse gain the columns dbt now reads
        with connect(warehouse) as con:
            ensure_raw_tables(con)
    run_dbt(["build"], warehouse=warehouse, variables=variables, target=dbt_target)
    return scoring_cutoff(dbt_target, warehouse)


@task(cache_policy=NO_CACHE)
def train_model(warehouse: str, horizon_days: int = 365,
                target: str = "duckdb") -> tuple[TrainingResult, pd.DataFrame]:
    """Fit the champion model type on the labelled snapshots, with an out-of-time holdout (here, or as
    a SageMaker training job when CLV_TRAINING_BACKEND=sagemaker)."""
    training_set = read_warehouse(target, warehouse, "customer_training_set")
    if sagemaker_jobs.training_backend() == "sagemaker":
        result = sagemaker_jobs.train_on_sagemaker(training_set, horizon_days)
    else:
        result = train_with_temporal_holdout(training_set, horizon_days)
    get_run_logger().info("trained on %d rows (cutoffs %s); holdout %s: %s", result.rows_trained,
                          ", ".join(result.train_cutoffs), result.holdout_cutoff, result.holdout_metrics)
    return result, training_set


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def register_model(result: TrainingResult, training_set: pd.DataFrame, model_name: str,
                   run_params: dict) -> registry.RegisteredModel:
    """Log the run to MLflow, register a version, make it champion when there is none."""
    registry.use_tracking_store(config.default_tracking_uri(), config.default_artifact_location())
    return registry.log_and_register(result, training_set, model_name, run_params, config.CHAMPION_ALIAS)


@task(cache_policy=NO_CACHE)
def gate_challenger(result: TrainingResult, training_set: pd.DataFrame, registered: registry.RegisteredModel,
                    gate_config: dict | None = None) -> dict:
    """A new version that is not the champion becomes `challenger` when it passes every promotion gate."""
    if registered.is_champion or result.holdout is None:
        return {"evaluated": False, "passed": None, "gates": []}
    registry.use_tracking_store(config.default_tracking_uri(), config.default_artifact_location())
    champion, champion_version, _ = registry.load_model_by_alias(registered.name, config.CHAMPION_ALIAS)
    ordered = training_set.sort_values(["cutoff_date", "customer_id"], kind="mergesort", ignore_index=True)
    holdout_rows = ordered[ordered["cutoff_date"].astype(str) == result.holdout_cutoff]
    results = evaluate_gates(result.holdout, champion.predict(holdout_rows), GateConfig(**(gate_config or {})))
    passed = gates_passed(results)
    registry.record_gates(registered.name, registered.version, registered.run_id, as_dicts(results), passed)
    logger = get_run_logger()
    for gate in results:
        logger.info("gate %s: %s (%s)", gate.gate, "pass" if gate.passed else "FAIL", gate.detail)
    return {"evaluated": True, "passed": passed, "champion_version": champion_version,
            "gates": [{"gate": g.gate, "passed": g.passed, "detail": g.detail} for g in results]}


@task(cache_policy=NO_CACHE)
def score_customers(warehouse: str, cutoff: date, model_name: str, horizon_days: int = 365,
                    high_share: float = 0.2, medium_share: float = 0.3, target: str = "duckdb") -> dict:
    """Score every customer known at the cutoff with the champion, add BG/NBD's P(alive) and expected
    orders and the three strongest SHAP reasons, and publish `clv_scores`."""
    registry.use_tracking_store(config.default_tracking_uri(), config.default_artifact_location())
    model, version, columns = registry.load_model_by_alias(model_name, config.CHAMPION_ALIAS)
    features = read_warehouse(target, warehouse, "customer_features", "cutoff_date = ?", [cutoff])
    if features.empty:
        raise ValueError(f"no customers known at cutoff {cutoff}: nothing to score")
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise KeyError(f"customer_features lacks column(s) the champion needs: {', '.join(missing)}")
    if sagemaker_jobs.scoring_backend() == "sagemaker":
        remote = sagemaker_jobs.batch_score_on_sagemaker(model, version, features)
        predictions, reasons = remote["predicted_clv_12m"].to_numpy(float), remote["top_reasons"].to_numpy(object)
    else:
        predictions, reasons = model.predict(features), reasons_in_batches(model, features)
    btyd = BgNbdGammaGamma(horizon_days).components(features)
    scores = build_score_table(features["customer_id"], cutoff, predictions, model_name, version,
                               pd.Timestamp.now(tz="UTC").tz_localize(None), high_share, medium_share,
                               p_alive=btyd["p_alive"], expected_orders=btyd["expected_orders"],
                               reasons=reasons)
    if target == "duckdb":
        with connect(warehouse) as con:
            publish_scores(con, scores)
    else:
        server_warehouse.publish_scores(target, scores)
    export = export_scores(scores, cutoff)
    tiers = scores["clv_tier"].value_counts().to_dict()
    return {"customers_scored": len(scores), "model_version": version, "tiers": tiers,
            "predicted_total": float(predictions.sum()), "scores_export": export}


def export_scores(scores: pd.DataFrame, cutoff) -> str:
    """clv_scores as parquet under the storage root (CLV_STORAGE_URL: a directory, default
    $CLV_HOME/exports, or s3://...), for tools that pick files up rather than query the warehouse."""
    target = Storage.from_env(config.project_home() / "exports")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "clv_scores.parquet"
        scores.to_parquet(local, index=False)
        return target.put(local, f"clv_scores/cutoff={pd.Timestamp(cutoff).date()}/clv_scores.parquet")


@flow(name="weekly-clv", log_prints=True)
def weekly_clv_pipeline(
    orders: str | None = None,
    customers: str | None = None,
    events: str | None = None,
    cutoff: date | None = None,
    horizon_days: int = 365,
    training_snapshots: int = 3,
    snapshot_spacing_days: int = 91,
    warehouse: str | None = None,
    model_name: str = config.MODEL_NAME,
    order_value_cap_percentile: float | None = 0.999,
    high_tier_share: float = 0.2,
    medium_tier_share: float = 0.3,
    gate_config: dict | None = None,
    sources: str | None = None,
    target: str | None = None,
) -> dict:
    """Land the inputs (files given directly, or the sources listed in a sources file; the bundled
    Online Retail II orders when neither is given), build features and labels in dbt, train and register
    a model, score customers. `target` picks the warehouse (default CLV_DBT_TARGET, else duckdb)."""
    target = target or os.environ.get("CLV_DBT_TARGET", "duckdb")
    if target not in ("duckdb", *server_warehouse.SERVER_TARGETS):
        raise ValueError(f"unknown warehouse target {target!r}: use duckdb, postgres or redshift")
    warehouse = str(Path(warehouse or config.default_warehouse()).resolve())
    loads = land_inputs(warehouse, orders, customers, events, target, sources)
    scoring_date = build_features(warehouse, cutoff, horizon_days, training_snapshots, snapshot_spacing_days,
                                  target, order_value_cap_percentile)
    result, training_set = train_model(warehouse, horizon_days, target)
    registered = register_model(result, training_set, model_name, {
        "scoring_cutoff": str(scoring_date), "horizon_days": horizon_days,
        "orders_input": orders or sources or str(config.BUNDLED_ORDERS)})
    gates = gate_challenger(result, training_set, registered, gate_config)
    scored = score_customers(warehouse, scoring_date, model_name, horizon_days, high_tier_share, medium_tier_share,
                             target)
    summary = {
        "cutoff": str(scoring_date),
        "horizon_days": horizon_days,
        "loads": loads,
        "trained_version": registered.version,
        "trained_is_champion": registered.is_champion,
        "gates": gates,
        "holdout_cutoff": result.holdout_cutoff,
        "holdout_metrics": result.holdout_metrics,
        "baseline_metrics": result.baseline_metrics,
        "warehouse": warehouse if target == "duckdb" else f"{target} ({WAREHOUSE_SETTINGS[target]} settings)",
        "mlflow_tracking_uri": config.default_tracking_uri(),
        **scored,
    }
    create_markdown_artifact(key="weekly-clv-summary", markdown=format_summary(summary),
                             description="Weekly CLV run")
    return summary


def format_summary(summary: dict) -> str:
    """The run summary printed by `clv run` and shown as a Prefect artifact."""
    def metrics(values: dict) -> str:
        shown = ("mae", "rmse", "normalized_gini")
        return ", ".join(f"{k} {values[k]:,.3f}" for k in shown if k in values) or "n/a (needs two training cutoffs)"

    gates = summary.get("gates") or {}
    if summary["trained_is_champion"]:
        champion_note = "now champion"
    elif gates.get("evaluated"):
        failed = [g["gate"] for g in gates["gates"] if not g["passed"]]
        champion_note = ("passed every gate: now challenger" if gates["passed"]
                         else f"registered; failed gates: {', '.join(failed)}")
    else:
        champion_note = "registered; champion unchanged"
    lines = [
        f"Weekly CLV run, cutoff {summary['cutoff']} (horizon {summary['horizon_days']} days)",
        f"- customers scored: {summary['customers_scored']:,} with model version {summary['model_version']}"
        f" (tiers: {', '.join(f'{k} {v:,}' for k, v in sorted(summary['tiers'].items()))})",
        f"- trained version {summary['trained_version']} ({champion_note})",
        f"- holdout at cutoff {summary['holdout_cutoff']}: {metrics(summary['holdout_metrics'])}",
        f"- baseline (last year's spend) on the same holdout: {metrics(summary['baseline_metrics'])}",
        f"- warehouse: {summary['warehouse']} (table clv_scores); export: {summary.get('scores_export')}",
        f"- MLflow store: {summary['mlflow_tracking_uri']}",
    ]
    return "\n".join(lines)
