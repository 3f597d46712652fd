"""The weekly CLV cycle: land -> dbt build -> (train -> gates, when there is no champion yet) -> score.

Each step is a Prefect task that calls library code in `clv/` and `models_ml/`; the flow reads like
the runbook. Run it with `clv run` (no Prefect server needed) or as the `weekly-clv` deployment.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE

from flows.exclusive import exclusive_warehouse
from clv import config
from clv.cloud import sagemaker_jobs
from clv.cloud.storage import Storage
from clv.ingest.sources import land_sources, run_sources
from clv import progress
from clv.ingest.freshness import check_source_freshness, write_freshness_report
from clv.ingest.validation import InputValidationError, reports_markdown, write_report
from clv.transform import dbt_vars, run_dbt
from clv.rollout import model_decisions
from clv.settings import DEFAULTS, RunSettings, SettingsError, load_settings
from clv.snapshots import SnapshotPlan, plan_for_warehouse
from clv.store_check import check_tracking_store
from clv.warehouse.embedded import WarehouseReader, scoring_cutoff
from clv.warehouse.engines import open_warehouse, resolve_target
from models_ml import registry, zoo
from models_ml.btyd import AliveModel
from models_ml.protocol import BASELINE
from models_ml.reasons import baseline_reasons, reasons_in_batches
from models_ml.scoring import DEFAULT_MAX_PREDICTION_MULTIPLE, build_score_table, check_publishable
from models_ml.training import serving_rows, train_and_evaluate


def transient(exc: BaseException | None) -> bool:
    """An error a second attempt can fix: a dropped or refused connection, a timeout, an AWS endpoint or
    throttling error. Never an input, data or configuration error (those fail at once)."""
    import psycopg2

    if isinstance(exc, (ConnectionError, TimeoutError, psycopg2.OperationalError)):
        return True
    try:
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore is pinned
        return False
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError)):
        return True
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError")


def retry_on_transient_errors(task, task_run, state) -> bool:
    """Prefect retry condition: retry only `transient` errors."""
    data = state.data
    return transient(data if isinstance(data, BaseException) else state.result(raise_on_failure=False))


# I/O steps (reading remote sources, publishing) retry transient errors with backoff; long steps time out.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": [10, 60], "retry_condition_fn": retry_on_transient_errors}
HOUR = 3600


@task(cache_policy=NO_CACHE, timeout_seconds=4 * HOUR, **IO_RETRIES)
@progress.step("land inputs", lambda loads: f"{sum(l['rows_inserted'] for l in loads):,} new rows, "
                                                 f"{sum(l['rows_quarantined'] for l in loads):,} quarantined")
def land_inputs(warehouse: str, orders: str | None, customers: str | None, events: str | None,
                target: str = "duckdb", sources: str | None = None) -> list[dict]:
    """Land every input into the raw schema: stage, validate with the Great Expectations suites, then
    commit all of them, or none when a critical expectation fails (the run stops before dbt). The
    validation report is a Prefect artifact and a file under $CLV_HOME/reports. With the postgres
    target, inputs are staged in an in-memory DuckDB and COPied to PostgreSQL."""
    logger = get_run_logger()
    listed = run_sources(orders, customers, events, sources)
    cache_dir = config.project_home() / "landing-cache"
    destination = open_warehouse(target, warehouse)
    with destination.staging() as con:
        sink = destination.raw_sink(con)
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
        for check in report.critical_failures:  # the run's failure (one error) names them all again
            logger.warning("%s: refused: %s", report.entity, check.describe())
    logger.info("validation report: %s", path)


def read_frame(target: str, warehouse: str, sql: str, params=None) -> pd.DataFrame:
    """A query on the warehouse (DuckDB file, PostgreSQL or Redshift) as a DataFrame."""
    return open_warehouse(target, warehouse).read(sql, params)


@task(cache_policy=NO_CACHE, timeout_seconds=HOUR, **IO_RETRIES)
@progress.step("check source freshness", lambda checked: ", ".join(f"{c['source']} {c['status']}" for c in checked))
def check_freshness(warehouse: str, target: str = "duckdb") -> list[dict]:
    """dbt source freshness of the landed feeds (clv/ingest/freshness.py): a stale feed is a warning in the log,
    the artifact `clv-source-freshness` and $CLV_HOME/reports; past its error threshold the run stops here,
    before features are built."""
    logger = get_run_logger()
    checked = check_source_freshness(warehouse, target)
    label = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"
    path = write_freshness_report(checked, config.project_home() / "reports", label)
    for check in checked:
        (logger.warning if check.status == "warn" else logger.info)("source freshness: %s", check.line())
    create_table_artifact(key="clv-source-freshness", table=[asdict(c) for c in checked],
                          description="How long since each feed last delivered new rows (dbt source freshness)")
    logger.info("freshness report: %s", path)
    return [asdict(c) for c in checked]


@task(cache_policy=NO_CACHE, timeout_seconds=6 * HOUR)
@progress.step("build features (dbt)", lambda built: f"scoring cutoff {built[0]}")
def build_features(warehouse: str, cutoff: date | None, horizon_days: int, dbt_target: str = "duckdb",
                   order_value_cap_percentile: float | None = DEFAULTS.order_value_cap_percentile,
                   min_history_days: int = DEFAULTS.min_history_days,
                   snapshot_grid_months: int = DEFAULTS.snapshot_grid_months,
                   backtest_origins: int = DEFAULTS.backtest_origins,
                   max_training_cutoffs: int | None = None, full_refresh: bool = False) -> tuple[date, SnapshotPlan]:
    """The snapshot calendar of the landed data, then `dbt build`: staging, features at the scoring cutoff
    and at calendar cutoffs not built yet, labels whose window matured since, and their tests. Snapshots
    already built are kept; `full_refresh` rebuilds every one of them."""
    open_warehouse(dbt_target, warehouse).ensure_raw_schema()  # an older warehouse gains what dbt now reads
    plan = plan_for_warehouse(WarehouseReader(dbt_target, warehouse), cutoff, horizon_days,
                              min_history_days=min_history_days, grid_months=snapshot_grid_months,
                              origins_wanted=backtest_origins, max_training_cutoffs=max_training_cutoffs)
    logger = get_run_logger()
    logger.info("snapshot calendar: %d training cutoffs (%s .. %s); backtest at %d days, origins %s%s",
                len(plan.training_cutoffs), plan.training_cutoffs[0] if plan.training_cutoffs else "-",
                plan.training_cutoffs[-1] if plan.training_cutoffs else "-", plan.backtest.horizon_days,
                ", ".join(plan.backtest.origins) or "none", f" ({plan.backtest.note})" if plan.backtest.note else "")
    variables = dbt_vars(cutoff, horizon_days, plan.training_cutoffs, plan.label_horizons, order_value_cap_percentile)
    run_dbt(["build", *(["--full-refresh"] if full_refresh else [])], warehouse=warehouse, variables=variables,
            target=dbt_target)
    return scoring_cutoff(dbt_target, warehouse), plan


@task(cache_policy=NO_CACHE, timeout_seconds=6 * HOUR)
@progress.step("train and backtest", lambda trained: "no change since the last version" if trained["no_change"]
               else f"{trained['result'].rows_trained:,} snapshots trained")
def train_model(warehouse: str, plan: SnapshotPlan, model_name: str, target: str = "duckdb",
                spec: dict | None = None, resamples: int = 200) -> dict:
    """Backtest the configuration against last year's spend and the champion's configuration on the
    strict protocol, then fit it on the snapshots labelled at the prediction horizon (here, or as a
    SageMaker training job when CLV_TRAINING_BACKEND=sagemaker). Nothing is trained when a version with
    this configuration was already trained on exactly these snapshots ("no change")."""
    logger = get_run_logger()
    config.use_project_tracking_store()
    spec = spec or zoo.default_spec()
    training_set = read_frame(target, warehouse, "select * from customer_training_set "
                                                 "order by cutoff_date, customer_id, horizon_days")
    rows = serving_rows(training_set, plan.horizon_days, plan.serving_cutoffs or None)
    same = model_decisions.existing_version(model_name, rows, spec)
    if same is not None:
        logger.info("no change: version %s was trained with this configuration on exactly these %d snapshots rows",
                    same, len(rows))
        return {"no_change": True, "version": same}
    champion, champion_spec = model_decisions.champion_spec(model_name)
    fit = sagemaker_jobs.fit_on_sagemaker if sagemaker_jobs.training_backend() == "sagemaker" else None
    result = train_and_evaluate(training_set, plan, spec, champion_spec, resamples, fit=fit)
    logger.info("trained %s on %d rows (cutoffs %s .. %s)", spec["type"], result.rows_trained,
                result.train_cutoffs[0], result.train_cutoffs[-1])
    return {"no_change": False, "result": result, "serving_rows": rows, "champion": champion}


@task(cache_policy=NO_CACHE, timeout_seconds=HOUR, **IO_RETRIES)
@progress.step("register and gate", lambda decision: f"version {decision['version']}: {decision['outcome']}")
def register_and_gate(trained: dict, model_name: str, run_params: dict, scoring_population: pd.DataFrame,
                      recent_orders: pd.DataFrame, gate_config: dict | None = None) -> dict:
    """Register the new version in MLflow (with its drift baseline: its own scoring population) and run
    the promotion gates: champion (first version), challenger, not served, or rejected."""
    if trained["no_change"]:
        return {"version": trained["version"], "outcome": "no_change", "passed": None, "gates": [],
                "reason": f"version {trained['version']} was trained with the same configuration on the same data"}
    config.use_project_tracking_store()
    result = trained["result"]
    registered = registry.log_and_register(result, trained["serving_rows"], model_name, run_params,
                                           scoring_population, recent_orders)
    decision = model_decisions.decide(result, registered, trained["champion"], gate_config)
    logger = get_run_logger()
    for gate in decision["gates"]:
        logger.info("gate %s: %s (%s)", gate["gate"], "pass" if gate["passed"] else "FAIL", gate["detail"])
    create_markdown_artifact(key="clv-gates", markdown=gates_markdown(decision, result),
                             description="Promotion gates of the version trained in this run")
    create_table_artifact(key="clv-gates-table", table=[
        {"gate": g["gate"], "result": "pass" if g["passed"] else "FAIL", "numbers": g["detail"]} for g in decision["gates"]],
        description=f"Version {decision['version']}: {decision['outcome']}. {mlflow_link(registered.run_id)}")
    if result.backtest is not None:
        create_table_artifact(key="clv-backtest", table=backtest_table(result.backtest.summary()),
                              description=f"Strict backtest, mean over origins [95% paired bootstrap]. "
                                          f"{mlflow_link(registered.run_id)}")
    return decision


@task(cache_policy=NO_CACHE, timeout_seconds=4 * HOUR, **IO_RETRIES)
@progress.step("score and publish", lambda scored: f"{scored['customers_scored']:,} customers scored by "
                                                     f"{scored['served_model']}")
def score_customers(features: pd.DataFrame, warehouse: str, cutoff: date, model_name: str,
                    horizon_days: int = DEFAULTS.horizon_days,
                    high_share: float = 0.2, medium_share: float = 0.3, target: str = "duckdb",
                    max_prediction_multiple: float = DEFAULT_MAX_PREDICTION_MULTIPLE,
                    allow_older_cutoff: bool = False) -> dict:
    """Score every customer known at the cutoff with the champion (last year's spend while no model has
    passed the gates), add P(alive) and expected orders and the three strongest reasons, and publish
    `clv_scores` unless a prediction is implausible (`check_publishable`) or the cutoff is older than
    the published one (unless `allow_older_cutoff`)."""
    config.use_project_tracking_store()
    if features.empty:
        raise ValueError(f"no customers known at cutoff {cutoff}: nothing to score")
    if registry.champion_version(model_name) is None:
        served_name, version = BASELINE, "baseline"
        predictions = zoo.build_model({"type": BASELINE}, horizon_days).predict(features)
        reasons, contributions = baseline_reasons(features, horizon_days)
    else:
        served_name = model_name
        model, version, columns = registry.load_model_by_alias(model_name, config.CHAMPION_ALIAS)
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise KeyError(f"customer_features lacks column(s) the champion needs: {', '.join(missing)}")
        if sagemaker_jobs.scoring_backend() == "sagemaker":
            remote = sagemaker_jobs.batch_score_on_sagemaker(model, version, features)
            predictions = remote["predicted_clv_12m"].to_numpy(float)
            reasons, contributions = remote["top_reasons"].to_numpy(object), remote["reason_contributions"].to_numpy(object)
        else:
            predictions = model.predict(features)
            reasons, contributions = reasons_in_batches(model, features)
    check_publishable(features["customer_id"], predictions, features["revenue_sum_365d"], horizon_days,
                      max_prediction_multiple)
    btyd = AliveModel(horizon_days).components(features)
    scores = build_score_table(features["customer_id"], cutoff, predictions, served_name, version,
                               pd.Timestamp.now(tz="UTC").tz_localize(None), high_share, medium_share,
                               p_alive=btyd["p_alive"], expected_orders=btyd["expected_orders"],
                               reasons=reasons, reason_contributions=contributions)
    open_warehouse(target, warehouse).publish_scores(scores, allow_older_cutoff)
    export = export_scores(scores, cutoff)
    create_table_artifact(key="clv-score-tiers", table=tier_table(scores),
                          description=f"Scores published for cutoff {cutoff} by {served_name} version {version}")
    tiers = scores["clv_tier"].value_counts().to_dict()
    return {"customers_scored": len(scores), "served_model": served_name, "model_version": version, "tiers": tiers,
            "predicted_total": float(predictions.sum()), "scores_export": export}


def mlflow_link(run_id: str) -> str:
    """Where the run lives in MLflow (a link when the tracking server is HTTP)."""
    uri = config.default_tracking_uri()
    if uri.startswith("http"):
        return f"MLflow run: {uri.rstrip('/')}/#/experiments/0/runs/{run_id}"  # resolved by the MLflow UI
    return f"MLflow run {run_id} in {uri}"


def tier_table(scores: pd.DataFrame) -> list[dict]:
    """Customers and predicted value per tier, and the share of value of the top 10% and 20% of customers."""
    total = float(scores["predicted_clv_12m"].sum()) or 1.0
    rows = [{"tier": tier, "customers": int((scores["clv_tier"] == tier).sum()),
             "predicted_value": round(float(scores.loc[scores["clv_tier"] == tier, "predicted_clv_12m"].sum()), 2),
             "share_of_value": round(float(scores.loc[scores["clv_tier"] == tier, "predicted_clv_12m"].sum()) / total, 4)}
            for tier in ("high", "medium", "low")]
    ranked = scores["predicted_clv_12m"].sort_values(ascending=False).to_numpy(float)
    for share in (0.1, 0.2):
        top = ranked[: max(1, int(round(share * len(ranked))))]
        rows.append({"tier": f"top {share:.0%} of customers", "customers": len(top),
                     "predicted_value": round(float(top.sum()), 2), "share_of_value": round(float(top.sum()) / total, 4)})
    return rows


def backtest_table(backtest: dict) -> list[dict]:
    """One row per model: each metric with its interval, and its difference to last year's spend."""
    rows = []
    for name, metrics in backtest["metrics"].items():
        ci = backtest["ci"][name]
        row = {"model": name}
        for key, label, digits in (("mae", "MAE", 1), ("normalized_gini", "Gini", 3),
                                   ("calibration_ratio", "calibration", 3)):  # MAE in currency, ratios to 0.001
            low, high = ci.get(key, [float("nan")] * 2)
            row[label] = f"{metrics[key]:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"
            diff = ci.get(f"{key}_diff_vs_{BASELINE}")
            row[f"{label} vs last year's spend"] = f"[{diff[0]:+,.{digits}f}, {diff[1]:+,.{digits}f}]" if diff else ""
        rows.append(row)
    return rows


def export_scores(scores: pd.DataFrame, cutoff) -> str:
    """clv_scores as parquet under the storage root (CLV_STORAGE_URL: a directory, default
    $CLV_HOME/exports, or s3://...), for tools that pick files up rather than query the warehouse."""
    target = Storage.from_env(config.project_home() / "exports")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "clv_scores.parquet"
        scores.to_parquet(local, index=False)
        return target.put(local, f"clv_scores/cutoff={pd.Timestamp(cutoff).date()}/clv_scores.parquet")


def scoring_population(target: str, warehouse: str, cutoff) -> pd.DataFrame:
    """customer_features at the scoring cutoff, in customer order (a deterministic read)."""
    return read_frame(target, warehouse, "select * from customer_features where cutoff_date = ? order by customer_id",
                      [cutoff])


def recent_orders(target: str, warehouse: str, cutoff, days: int = 7) -> pd.DataFrame:
    """Orders of the `days` days up to the cutoff (the drift monitor's activity baseline)."""
    start = (pd.Timestamp(cutoff) - pd.Timedelta(days=days)).date()
    return read_frame(target, warehouse, "select customer_id, order_date, purchase_value from int_orders "
                      "where order_date > ? and order_date <= ? order by customer_id, order_date", [start, cutoff])


def published_model(target: str, warehouse: str) -> tuple[str, str] | None:
    """(model_name, model_version) of the scores BI reads now, or None before the first publish."""
    published = open_warehouse(target, warehouse)
    if not published.has("clv_scores"):
        return None
    row = published.read("select model_name, model_version from clv_scores limit 1")
    return None if row.empty else (str(row.iloc[0, 0]), str(row.iloc[0, 1]))


def resolve_settings(settings_file: str | None, demo: bool, **params) -> RunSettings:
    """The run's settings: explicit parameters, then the settings file, then defaults. Without inputs a
    run stops, unless it is the demo (`make run`), which lands the bundled Online Retail II orders."""
    settings = load_settings(settings_file, **params)
    if not settings.has_inputs:
        if not demo:
            raise SettingsError("no inputs: give a sources file or orders file (parameters `sources`/`orders`, or "
                                "the settings file); the bundled demo data are only used with demo=True "
                                "(`make run`, `clv run` without inputs)")
        settings.orders = str(config.BUNDLED_ORDERS)
    return settings


@flow(name="weekly-clv", log_prints=True)
def weekly_clv_pipeline(
    orders: str | None = None,
    customers: str | None = None,
    events: str | None = None,
    cutoff: date | None = None,
    horizon_days: int | None = None,
    warehouse: str | None = None,
    model_name: str | None = None,
    order_value_cap_percentile: float | None = None,
    high_tier_share: float | None = None,
    medium_tier_share: float | None = None,
    gate_config: dict | None = None,
    sources: str | None = None,
    target: str | None = None,
    settings_file: str | None = None,
    demo: bool = False,
    retrain: bool = False,
    model_spec: dict | None = None,
    full_refresh: bool = False,
    allow_older_cutoff: bool = False,
    new_registry: bool = False,
) -> dict:
    """Land the inputs, build features and labels in dbt, train and gate a model when there is no
    champion yet (or `retrain`), and score every customer with the champion. Feature and label snapshots
    already built are kept (`full_refresh` rebuilds them all).

    Inputs come from the parameters or the settings file (`settings_file`, see clv-settings.example.yml);
    `demo=True` lands the bundled Online Retail II orders when neither names any. `target` picks the
    warehouse (default CLV_DBT_TARGET, else duckdb)."""
    settings = resolve_settings(settings_file, demo, orders=orders, customers=customers, events=events,
                                cutoff=str(cutoff) if cutoff else None, horizon_days=horizon_days,
                                warehouse=warehouse, model_name=model_name,
                                order_value_cap_percentile=order_value_cap_percentile,
                                high_tier_share=high_tier_share, medium_tier_share=medium_tier_share,
                                gate_config=gate_config, sources=sources, target=target, model_spec=model_spec)
    target = resolve_target(settings.target)
    warehouse = str(Path(settings.warehouse or config.default_warehouse()).resolve())
    with exclusive_warehouse(target, warehouse, "weekly-clv"):
        check_tracking_store(config.default_tracking_uri(), settings.model_name, published_model(target, warehouse),
                             new_registry)
        loads = land_inputs(warehouse, settings.orders, settings.customers, settings.events, target, settings.sources)
        freshness = check_freshness(warehouse, target)
        scoring_date, plan = build_features(warehouse, settings.cutoff, settings.horizon_days, target,
                                            settings.order_value_cap_percentile, settings.min_history_days,
                                            settings.snapshot_grid_months, settings.backtest_origins,
                                            full_refresh=full_refresh)
        population = scoring_population(target, warehouse, scoring_date)
        config.use_project_tracking_store()
        decision = None
        if retrain or registry.champion_version(settings.model_name) is None:
            trained = train_model(warehouse, plan, settings.model_name, target, settings.model_spec,
                                  settings.bootstrap_resamples)
            decision = register_and_gate(trained, settings.model_name, {
                "scoring_cutoff": str(scoring_date), "horizon_days": settings.horizon_days,
                "inputs": settings.sources or settings.orders}, population,
                recent_orders(target, warehouse, scoring_date).assign(customers_known=len(population)),
                settings.gate_config)
            decision["backtest"] = (trained["result"].backtest.summary() if not trained["no_change"]
                                    and trained["result"].backtest is not None else None)
        scored = score_customers(population, warehouse, scoring_date, settings.model_name, settings.horizon_days,
                                 settings.high_tier_share, settings.medium_tier_share, target,
                                 settings.max_prediction_multiple, allow_older_cutoff)
        summary = {
            "cutoff": str(scoring_date),
            "horizon_days": settings.horizon_days,
            "loads": loads,
            "freshness": freshness,
            "plan": plan.as_dict(),
            "decision": decision,
            "warehouse": open_warehouse(target, warehouse).describe(),
            "mlflow_tracking_uri": config.default_tracking_uri(),
            **scored,
        }
        create_markdown_artifact(key="weekly-clv-summary", markdown=format_summary(summary),
                                 description="Weekly CLV run")
        return summary


def _metric_line(name: str, metrics: dict, ci: dict, reference: str | None = None) -> str:
    parts = []
    for key, label, fmt in (("mae", "MAE", "{:,.1f}"), ("normalized_gini", "Gini", "{:.3f}"),
                            ("calibration_ratio", "calibration", "{:.3f}")):
        value = fmt.format(metrics[key])
        low, high = ci.get(key, [float("nan")] * 2)
        text = f"{label} {value} [{fmt.format(low)}, {fmt.format(high)}]"
        diff = ci.get(f"{key}_diff_vs_{reference}") if reference else None
        if diff:
            text += f" (vs {reference}: [{fmt.format(diff[0])}, {fmt.format(diff[1])}])"
        parts.append(text)
    return f"  - {name}: " + "; ".join(parts)


OUTCOME_TEXT = {
    "champion": "passed every gate: now champion",
    "not_served": "did not beat last year's spend: NOT served; last year's spend is served until a model passes",
    "challenger": "passed every gate: now challenger (promotion: clv promote)",
    "rejected": "failed the gates: registered, not challenger",
    "no_change": "no change",
}


def format_summary(summary: dict) -> str:
    """The run summary printed by `clv run` and shown as a Prefect artifact."""
    plan = summary["plan"]
    lines = [
        f"Weekly CLV run, cutoff {summary['cutoff']} (horizon {summary['horizon_days']} days)",
        f"- customers scored: {summary['customers_scored']:,} by {summary['served_model']} version "
        f"{summary['model_version']} (tiers: {', '.join(f'{k} {v:,}' for k, v in sorted(summary['tiers'].items()))})",
    ]
    decision = summary.get("decision")
    if decision is None:
        lines.append("- no training this run: a champion serves (retraining runs on a drift alert or performance "
                     "drop, or with --retrain)")
    else:
        lines.append(f"- trained version {decision['version']}: {OUTCOME_TEXT[decision['outcome']]}"
                     + (f" ({decision['reason']})" if decision["outcome"] in ("no_change", "not_served", "rejected") else ""))
        backtest = decision.get("backtest")
        if backtest:
            lines.append(f"- strict backtest at {backtest['horizon_days']} days, origins {', '.join(backtest['origins'])}, "
                         f"{backtest['rows']:,} customer rows; mean over origins [95% paired bootstrap]:")
            if backtest.get("note"):
                lines.append(f"  ({backtest['note']})")
            for name in backtest["metrics"]:
                reference = BASELINE if name != BASELINE else None
                lines.append(_metric_line(name, backtest["metrics"][name], backtest["ci"][name], reference))
        for gate in decision.get("gates", []):
            lines.append(f"  - gate {gate['gate']}: {'pass' if gate['passed'] else 'FAIL'} ({gate['detail']})")
    lines += [
        f"- training snapshots: {len(plan['serving_cutoffs'])} month-end cutoffs with a full {plan['horizon_days']}-day "
        f"label ({plan['serving_cutoffs'][0] if plan['serving_cutoffs'] else '-'} .. "
        f"{plan['serving_cutoffs'][-1] if plan['serving_cutoffs'] else '-'})",
        f"- warehouse: {summary['warehouse']} (table clv_scores); export: {summary.get('scores_export')}",
        f"- MLflow store: {summary['mlflow_tracking_uri']}",
    ]
    return "\n".join(lines)


def gates_markdown(decision: dict, result) -> str:
    rows = "\n".join(f"| {g['gate']} | {'pass' if g['passed'] else 'FAIL'} | {g['detail']} |" for g in decision["gates"])
    return (f"# Version {decision['version']}: {decision['outcome']}\n\n{decision['reason']}\n\n"
            f"| gate | result | numbers |\n|---|---|---|\n{rows}\n")
