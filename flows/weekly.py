"""The weekly CLV cycle: land -> dbt build -> (train -> gates, when there is no champion yet) -> score.

Each step is a thin Prefect task (retries, time-outs, artifacts, the run logger) around a plain function of
`clv/pipeline.py`, which `clv bench scale` times too; the flow reads like the runbook. Run it with `clv run` (no Prefect server needed) or as the `weekly-clv` deployment.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timezone

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.events import emit_event

from clv import config, pipeline, progress
from clv.run_summary import format_summary
from clv.ingest.validation import InputValidationError, reports_markdown
from clv.settings import RunSettings, check_demo_choice, load_settings
from clv.snapshots import SnapshotPlan
from clv.store_check import check_tracking_store
from flows.exclusive import exclusive_warehouse
from models_ml import registry
from models_ml.protocol import BASELINE

CHALLENGER_EVENT = "clv.challenger.registered"


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
                                                 f"{sum(l['rows_quarantined_new'] for l in loads):,} new in quarantine")
def land_inputs(run: pipeline.Run) -> list[dict]:
    """Land every input into the raw schema (`pipeline.land`): all of them, or none when a critical
    expectation fails (the run stops before dbt). The validation report is a Prefect artifact too."""
    try:
        landed = pipeline.land(run, get_run_logger())
    except InputValidationError as failure:
        _validation_artifact(failure.reports)
        raise
    _validation_artifact(landed.reports)
    return [asdict(result) for result in landed.loads]


def _validation_artifact(reports) -> None:
    if reports:
        create_markdown_artifact(key="input-validation", markdown=reports_markdown(reports),
                                 description="Great Expectations validation of this run's inputs")


@task(cache_policy=NO_CACHE, timeout_seconds=HOUR, **IO_RETRIES)
@progress.step("check source freshness", lambda checked: ", ".join(f"{c['source']} {c['status']}" for c in checked))
def check_freshness(run: pipeline.Run) -> list[dict]:
    """dbt source freshness of the landed feeds (`pipeline.check_freshness`), also as the artifact
    `clv-source-freshness`; past its error threshold the run stops here, before features are built."""
    checked = [asdict(c) for c in pipeline.check_freshness(run, get_run_logger())]
    create_table_artifact(key="clv-source-freshness", table=checked,
                          description="How long since each feed last delivered new rows (dbt source freshness)")
    return checked


@task(cache_policy=NO_CACHE, timeout_seconds=6 * HOUR)
@progress.step("build features (dbt)", lambda built: f"scoring cutoff {built[0]}")
def build_features(run: pipeline.Run, full_refresh: bool = False) -> tuple[date, SnapshotPlan]:
    """`dbt build` of the snapshots the calendar needs (`pipeline.build`): the scoring cutoff's features,
    calendar cutoffs not built yet, labels that matured; `full_refresh` rebuilds every snapshot."""
    built = pipeline.build(run, full_refresh, log=get_run_logger())
    return built.cutoff, built.plan


@task(cache_policy=NO_CACHE, timeout_seconds=6 * HOUR)
@progress.step("train and backtest", lambda trained: "no change since the last version" if trained.no_change
               else f"{trained.rows_trained:,} snapshots trained")
def train_model(run: pipeline.Run, plan: SnapshotPlan) -> pipeline.Trained:
    """Backtest and fit the configured model (`pipeline.train`), or nothing when a version was already
    trained with this configuration on exactly these snapshots."""
    return pipeline.train(run, plan, get_run_logger())


def challenger_event(model_name: str, decision: dict) -> dict | None:
    """The event a new challenger announces (`clv.challenger.registered`, which the shadow deployment runs
    on), or None: a version rejected, kept as champion or not served, or no new version at all."""
    if decision["outcome"] != "challenger":
        return None
    return {"event": CHALLENGER_EVENT, "resource": {"prefect.resource.id": f"clv.model.{model_name}"},
            "payload": {"version": str(decision["version"]), "reason": decision.get("reason")}}


@task(cache_policy=NO_CACHE, timeout_seconds=HOUR, **IO_RETRIES)
@progress.step("register and gate", lambda decision: f"version {decision['version']}: {decision['outcome']}")
def register_and_gate(run: pipeline.Run, trained: pipeline.Trained, run_params: dict,
                      scoring_population: pd.DataFrame, recent_orders: pd.DataFrame) -> dict:
    """Register the new version and run the promotion gates (`pipeline.register_and_gate`); the gates and
    the strict backtest become Prefect artifacts, and a new challenger emits `clv.challenger.registered`."""
    decision = pipeline.register_and_gate(run, trained, run_params, scoring_population, recent_orders,
                                          get_run_logger())
    event = challenger_event(run.settings.model_name, decision)
    if event:
        emit_event(**event)
    if trained.no_change:
        return decision
    result = trained.result
    create_markdown_artifact(key="clv-gates", markdown=gates_markdown(decision, result),
                             description="Promotion gates of the version trained in this run")
    create_table_artifact(key="clv-gates-table", table=[
        {"gate": g["gate"], "result": "pass" if g["passed"] else "FAIL", "numbers": g["detail"]} for g in decision["gates"]],
        description=f"Version {decision['version']}: {decision['outcome']}. {mlflow_link(decision['run_id'])}")
    if result.backtest is not None:
        create_table_artifact(key="clv-backtest", table=backtest_table(result.backtest.summary(), result.fallback["type"]),
                              description=f"Strict backtest, mean over origins [95% paired bootstrap]. "
                                          f"{mlflow_link(decision['run_id'])}")
    return decision


@task(cache_policy=NO_CACHE, timeout_seconds=4 * HOUR, **IO_RETRIES)
@progress.step("score and publish", lambda scored: f"{scored['customers_scored']:,} customers scored by "
                                                     f"{scored['served_model']}")
def score_customers(run: pipeline.Run, features: pd.DataFrame, cutoff: date, allow_older_cutoff: bool = False) -> dict:
    """Score every customer known at the cutoff with the champion (last year's spend while no model has
    passed the gates), with P(alive), expected orders and the three strongest reasons; publish
    `clv_scores` unless a prediction is implausible or the cutoff is older than the published one (unless
    `allow_older_cutoff`), and export it as parquet."""
    scores, served = pipeline.score(run, features, cutoff)
    forecast = pipeline.forecast(served, features, scores)
    pipeline.publish(run, scores, allow_older_cutoff, forecast)
    export = pipeline.export(scores, cutoff)
    create_table_artifact(key="clv-score-tiers", table=tier_table(scores),
                          description=f"Scores published for cutoff {cutoff} by {served.name} version {served.version}")
    create_table_artifact(key="clv-forecast", table=forecast_table(forecast), description=(
        f"Next-{run.settings.horizon_days}-day revenue of the {len(scores):,} customers scored at {cutoff}, with the "
        "80% interval learned from the backtest's origins (clv_forecast)"))
    tiers = scores["clv_tier"].value_counts().to_dict()
    whole = forecast.iloc[0]
    return {"customers_scored": len(scores), "served_model": served.name, "model_version": served.version,
            "served_why": served.why, "tiers": tiers, "predicted_total": float(scores["predicted_clv_12m"].sum()),
            "predicted_total_interval": [whole["revenue_p10"], whole["revenue_p90"]], "interval_note": whole["interval_note"],
            "distribution": pipeline.distribution_summary(served), "scores_export": export}


def mlflow_link(run_id: str) -> str:
    """Where the run lives in MLflow (a link when the tracking server is HTTP)."""
    uri = config.default_tracking_uri()
    if uri.startswith("http"):
        from mlflow.tracking import MlflowClient

        try:
            experiment = MlflowClient(uri).get_run(run_id).info.experiment_id
        except Exception:  # noqa: BLE001 - the link is a convenience: without the run's experiment, the id
            return f"MLflow run {run_id} at {uri}"
        return f"[MLflow run {run_id}]({uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id})"
    return f"MLflow run {run_id} in {uri} (`mlflow ui --backend-store-uri {uri}` shows it)"


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


def forecast_table(forecast: pd.DataFrame) -> list[dict]:
    """The clv_forecast rows as the artifact shows them (rounded, the interval as text)."""
    def money(value) -> str:
        return "" if value is None or pd.isna(value) else f"{value:,.0f}"
    return [{"scope": f"{r.scope}: {r.scope_value}" if r.scope != "all" else "all customers", "customers": int(r.customers),
             "predicted revenue": money(r.predicted_revenue),
             "80% interval": f"{money(r.revenue_p10)} .. {money(r.revenue_p90)}" if pd.notna(r.revenue_p10) else r.interval_note}
            for r in forecast.itertuples()]


def backtest_table(backtest: dict, reference: str = BASELINE) -> list[dict]:
    """One row per model: each metric with its interval, and its difference to the fallback (`reference`)."""
    rows = []
    for name, metrics in backtest["metrics"].items():
        ci = backtest["ci"][name]
        row = {"model": name}
        for key, label, digits in (("deviance", "Poisson deviance", 1), ("normalized_gini", "Gini", 3),
                                   ("calibration_ratio", "calibration", 3), ("mae", "MAE", 1)):
            low, high = ci.get(key, [float("nan")] * 2)
            row[label] = f"{metrics[key]:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"
            diff = ci.get(f"{key}_diff_vs_{reference}")
            row[f"{label} vs {reference}"] = f"[{diff[0]:+,.{digits}f}, {diff[1]:+,.{digits}f}]" if diff else ""
        rows.append(row)
    return rows


def resolve_settings(settings_file: str | None, demo: bool, variable: str | None = None, **params) -> RunSettings:
    """The run's settings: explicit parameters, then the settings file, then defaults. Without inputs a
    run stops, unless it is the demo (`make run`, `demo=True`), which lands the bundled Online Retail II
    orders and nothing else."""
    settings = load_settings(settings_file, variable, **params)
    check_demo_choice(settings.has_inputs, demo)
    if demo:
        settings.orders = str(config.BUNDLED_ORDERS)
    return settings


def weekly_run_name() -> str:
    """`weekly-clv 2011-12-09` (the cutoff asked for; `latest` when the run takes the data's own) and when
    it started, so the Prefect UI says what ran instead of a random name."""
    from prefect.runtime import flow_run

    cutoff = flow_run.parameters.get("cutoff")
    return f"weekly-clv {cutoff or 'latest'} (started {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)"


@flow(name="weekly-clv", log_prints=True, flow_run_name=weekly_run_name)
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
    settings_variable: str | None = None,
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
    `demo=True` lands the bundled Online Retail II orders (and refuses other inputs). `target` picks the
    warehouse (default CLV_DBT_TARGET, else duckdb).

    Args:
        orders: Orders export to land (file, glob or s3:// URL); empty: the settings file's.
        customers: Customers export to land (optional).
        events: Web events export to land (optional).
        cutoff: Scoring cutoff date (YYYY-MM-DD); empty: the day of the latest landed order.
        horizon_days: Prediction horizon in days (default 365).
        warehouse: DuckDB warehouse file (target duckdb); empty: the settings file's, else $CLV_HOME/warehouse/clv.duckdb.
        model_name: Registered model name in MLflow (default clv_xgboost).
        order_value_cap_percentile: Percentile capping an order's value in the features (default 0.999).
        high_tier_share: Share of customers in the high tier (default 0.2).
        medium_tier_share: Share of customers in the medium tier (default 0.3).
        gate_config: Promotion gate thresholds (see models_ml/gates.py GateConfig).
        sources: Sources file listing the shop's inputs (see sources.example.yml).
        target: Warehouse engine: duckdb, postgres or redshift (default CLV_DBT_TARGET, else duckdb).
        settings_file: The team's settings file (clv-settings.yml); parameters given here win over it.
        settings_variable: Prefect Variable whose settings win over the file's (deployments: clv_settings; `clv settings push` fills it, the UI edits it).
        demo: Land the bundled Online Retail II demo data (make run); refused beside a shop's inputs.
        retrain: Train and gate a new version although a champion serves.
        model_spec: One model configuration to train instead of choosing among the candidate types.
        full_refresh: Rebuild every feature and label snapshot (after adding a feature column).
        allow_older_cutoff: Publish although clv_scores holds a newer cutoff (re-publishing an old week).
        new_registry: Start a new MLflow registry although the warehouse publishes another store's model.
    """
    settings = resolve_settings(settings_file, demo, variable=settings_variable, orders=orders, customers=customers, events=events,
                                cutoff=str(cutoff) if cutoff else None, horizon_days=horizon_days,
                                warehouse=warehouse, model_name=model_name,
                                order_value_cap_percentile=order_value_cap_percentile,
                                high_tier_share=high_tier_share, medium_tier_share=medium_tier_share,
                                gate_config=gate_config, sources=sources, target=target, model_spec=model_spec)
    run = pipeline.Run.of(settings)
    with exclusive_warehouse(run.target, run.warehouse, "weekly-clv"):
        check_tracking_store(config.default_tracking_uri(), settings.model_name, pipeline.published_model(run),
                             new_registry, warehouse=run.identity)
        loads = land_inputs(run)
        freshness = check_freshness(run)
        scoring_date, plan = build_features(run, full_refresh)
        population = pipeline.scoring_population(run, scoring_date)
        config.use_project_tracking_store()
        decision = None
        if retrain or registry.champion_version(settings.model_name) is None:
            trained = train_model(run, plan)
            decision = register_and_gate(run, trained, {
                "scoring_cutoff": str(scoring_date), "horizon_days": settings.horizon_days,
                "inputs": settings.sources or settings.orders}, population,
                pipeline.recent_orders(run, scoring_date).assign(customers_known=len(population)))
            decision["backtest"] = (trained.result.backtest.summary() if not trained.no_change
                                    and trained.result.backtest is not None else None)
        scored = score_customers(run, population, scoring_date, allow_older_cutoff)
        summary = {
            "cutoff": str(scoring_date),
            "horizon_days": settings.horizon_days,
            "loads": loads,
            "freshness": freshness,
            "plan": plan.as_dict(),
            "decision": decision,
            "warehouse": run.warehouse_interface().describe(),
            "mlflow_tracking_uri": config.default_tracking_uri(),
            **scored,
        }
        create_markdown_artifact(key="weekly-clv-summary", markdown=format_summary(summary),
                                 description="Weekly CLV run")
        return summary


def gates_markdown(decision: dict, result) -> str:
    rows = "\n".join(f"| {g['gate']} | {'pass' if g['passed'] else 'FAIL'} | {g['detail']} |" for g in decision["gates"])
    choice = (f"Model type: **{result.spec['type']}** ({result.type_choice.get('why')}; rule: "
              f"{result.type_choice.get('rule', '-')}).\n\nFallback while no model passes: "
              f"**{result.fallback.get('label', result.fallback['type'])}** ({result.fallback.get('why')}).\n\n")
    return (f"# Version {decision['version']}: {decision['outcome']}\n\n{decision['reason']}\n\n{choice}"
            f"| gate | result | numbers |\n|---|---|---|\n{rows}\n")
