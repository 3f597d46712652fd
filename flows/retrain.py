"""Retraining on the team's own landed data, when there is something new: orders after the data the
champion was trained on, or a performance trigger (matured labels show a real drop). It lands nothing and
scores nothing (the weekly run does both), so it never touches demo data or the score history; it trains,
registers and gates a version, or reports why it did not."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger

from clv import config, pipeline
from clv.settings import load_settings
from clv.store_check import check_tracking_store
from clv.warehouse.embedded import WarehouseReader, scoring_cutoff
from flows.exclusive import exclusive_warehouse
from flows.weekly import register_and_gate, train_model
from models_ml import registry

PERFORMANCE_REASON = "clv.performance.degraded"


def something_new(reader: WarehouseReader, model_name: str, reason: str) -> tuple[bool, str]:
    """Whether retraining can learn anything: a performance trigger always counts; otherwise orders landed
    after the latest data a registered version was trained on."""
    if reason == PERFORMANCE_REASON:
        return True, "performance trigger: matured labels show a drop"
    last = reader.frame("select max(cast(order_ts as date)) as last_day from raw.orders "
                        "where customer_id is not null").iloc[0]["last_day"]
    champion = registry.champion_version(model_name)
    if champion is None:
        return True, "no champion yet"
    through = registry.version_tags(model_name, champion).get("data_through")
    if not through or last is None or pd.isna(last):
        return True, "the champion does not record the data it was trained on"
    if pd.Timestamp(last) > pd.Timestamp(through):
        return True, f"orders up to {pd.Timestamp(last).date()} landed after the champion's data ({through})"
    return False, f"nothing new: no orders after {through}, the data champion version {champion} was trained on"


@flow(name="retrain-clv", log_prints=True)
def retrain_flow(settings_file: str | None = None, warehouse: str | None = None, target: str | None = None,
                 reason: str = "manual", settings_variable: str | None = None) -> dict:
    """Train and gate a new version on the landed data when there is something new (see `something_new`).
    `reason` is the triggering event's name when an automation runs it.

    Args:
        settings_file: The team's settings file (clv-settings.yml).
        warehouse: DuckDB warehouse file (target duckdb); empty: the settings file's, else the default.
        target: Warehouse engine: duckdb, postgres or redshift.
        reason: Why it runs: the triggering event's name, or manual.
        settings_variable: Prefect Variable whose settings win over the file's (deployments: clv_settings; `clv settings push` fills it, the UI edits it).
    """
    settings = load_settings(settings_file, settings_variable, warehouse=warehouse, target=target)
    run = pipeline.Run.of(settings)
    with exclusive_warehouse(run.target, run.warehouse, "retrain-clv"):
        check_tracking_store(config.default_tracking_uri(), settings.model_name, pipeline.published_model(run),
                             warehouse=run.identity)
        config.use_project_tracking_store()
        reader = run.warehouse_interface().reader()
        go, why = something_new(reader, settings.model_name, reason)
        logger = get_run_logger()
        if not go:
            logger.info("no retraining: %s", why)
            return {"outcome": "skipped", "reason": why, "trigger": reason}
        # the weekly run built the features of the landed data; the same calendar is recomputed, not rebuilt
        scoring_date = scoring_cutoff(run.target, run.warehouse)
        plan = pipeline.snapshot_plan(run, scoring_date)
        population = pipeline.scoring_population(run, scoring_date)
        trained = train_model(run, plan)
        decision = register_and_gate(run, trained, {
            "scoring_cutoff": str(scoring_date), "horizon_days": settings.horizon_days, "trigger": reason},
            population, pipeline.recent_orders(run, scoring_date).assign(customers_known=len(population)))
        logger.info("retraining (%s): version %s %s (%s)", why, decision["version"], decision["outcome"],
                    decision["reason"])
        return {**decision, "trigger": reason, "why": why}
