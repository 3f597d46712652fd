"""Build the feature and label tables alone (no training or scoring), on DuckDB or PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow

from flows.exclusive import exclusive_warehouse
from clv import config
from clv.settings import DEFAULTS
from clv.warehouse.embedded import query
from clv.warehouse.engines import open_warehouse, resolve_target
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
    """Land any given files, then `dbt build` the features and labels at the cutoffs on the target."""
    target = resolve_target(target)
    warehouse = str(Path(warehouse or config.default_warehouse()).resolve())
    with exclusive_warehouse(target, warehouse, "feature-build"):
        loads = (land_inputs(warehouse, orders, customers, events, target, sources)
                 if (orders or customers or events or sources) else [])
        scoring_date, plan = build_features(warehouse, cutoff, horizon_days, target,
                                            order_value_cap_percentile if order_value_cap_percentile is not None else None)
        rows = query(target, warehouse, "select cast(cutoff_date as varchar), count(*) from customer_features "
                                        "group by 1 order by 1")
        return {"target": target, "cutoff": str(scoring_date), "loads": loads, "plan": plan.as_dict(),
                "feature_rows_by_cutoff": {cutoff_date: int(n) for cutoff_date, n in rows},
                "warehouse": open_warehouse(target, warehouse).describe()}
