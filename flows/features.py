"""Build the feature and label tables alone (no training or scoring), on DuckDB or PostgreSQL."""

from __future__ import annotations

from datetime import date

from prefect import flow

from clv import pipeline
from clv.settings import DEFAULTS, RunSettings
from clv.warehouse.embedded import query
from flows.exclusive import exclusive_warehouse
from flows.weekly import build_features, land_inputs


@flow(name="build-features", log_prints=True)
def feature_build_flow(
    cutoff: date | None = None,
    horizon_days: int = DEFAULTS.horizon_days,
    target: str = "duckdb",
    warehouse: str | None = None,
    orders: str | None = None,
    customers: str | None = None,
    events: str | None = None,
    order_value_cap_percentile: float | None = DEFAULTS.order_value_cap_percentile,
    sources: str | None = None,
) -> dict:
    """Land any given files, then `dbt build` the features and labels at the cutoffs on the target.

    Args:
        cutoff: Scoring cutoff date (YYYY-MM-DD); empty: the day of the latest landed order.
        horizon_days: Label horizon in days.
        target: Warehouse engine: duckdb, postgres or redshift.
        warehouse: DuckDB warehouse file (target duckdb).
        orders: Orders export to land first (optional).
        customers: Customers export to land first (optional).
        events: Web events export to land first (optional).
        order_value_cap_percentile: Percentile capping an order's value in the features.
        sources: Sources file listing the shop's inputs (optional).
    """
    run = pipeline.Run.of(RunSettings(), cutoff=str(cutoff) if cutoff else None, horizon_days=horizon_days,
                          target=target, warehouse=warehouse, orders=orders, customers=customers, events=events,
                          sources=sources, order_value_cap_percentile=order_value_cap_percentile)
    with exclusive_warehouse(run.target, run.warehouse, "feature-build"):
        loads = land_inputs(run) if (orders or customers or events or sources) else []
        scoring_date, plan = build_features(run)
        rows = query(run.target, run.warehouse, "select cast(cutoff_date as varchar), count(*) from customer_features "
                                                "group by 1 order by 1")
        return {"target": run.target, "cutoff": str(scoring_date), "loads": loads, "plan": plan.as_dict(),
                "feature_rows_by_cutoff": {cutoff_date: int(n) for cutoff_date, n in rows},
                "warehouse": run.warehouse_interface().describe()}
