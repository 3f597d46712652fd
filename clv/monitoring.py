"""Drift monitoring of the latest scoring run in a warehouse against the champion's training baseline."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from clv import config
from clv.warehouse import connect
from models_ml import registry
from models_ml.drift import drift_report

HISTORY_TABLE = "drift_history"
PROXY_DAYS = 30


class WarehouseReader:
    """Read queries, as DataFrames, on the DuckDB file (or an open DuckDB connection) or on a
    PostgreSQL/Redshift warehouse."""

    def __init__(self, target: str = "duckdb", warehouse=None, connection=None):
        self.target, self.warehouse, self.connection = target, warehouse, connection

    def frame(self, sql: str, params=None) -> pd.DataFrame:
        if self.connection is not None:
            return self.connection.execute(sql, params or []).df()
        if self.target == "duckdb":
            with connect(self.warehouse, read_only=True) as con:
                return con.execute(sql, params or []).df()
        from clv import server_warehouse

        return server_warehouse.read_query(self.target, sql, params)


def latest_scoring(reader: WarehouseReader) -> tuple[pd.DataFrame, object, str, str]:
    """Scores of the latest run (by scored_at) with their features, the cutoff, model name and version."""
    rows = reader.frame("select cutoff_date, model_name, model_version, max(scored_at) as scored_at "
                        "from clv_scores group by 1, 2, 3 order by 4 desc limit 1")
    if rows.empty:
        raise LookupError("clv_scores is empty: run `clv run` before `clv monitor`")
    cutoff, model_name, version = rows.iloc[0]["cutoff_date"], rows.iloc[0]["model_name"], rows.iloc[0]["model_version"]
    frame = reader.frame(
        """select f.*, s.predicted_clv_12m from clv_scores s
           join customer_features f on f.customer_id = s.customer_id and f.cutoff_date = s.cutoff_date""")
    return frame, pd.Timestamp(cutoff).date(), model_name, version


def proxy_rank_correlation(reader: WarehouseReader, cutoff, scores: pd.DataFrame) -> float | None:
    """Spearman correlation of predicted value with actual spend in the 30 days after the cutoff, once
    those days are in the warehouse (None before)."""
    last = reader.frame("select max(order_date) as last_day from int_orders").iloc[0]["last_day"]
    if last is None or pd.isna(last) or pd.Timestamp(last) < pd.Timestamp(cutoff) + pd.Timedelta(days=PROXY_DAYS):
        return None
    spend = reader.frame(
        """select customer_id, sum(purchase_value - returned_value) as spend from int_orders
            where order_date > ? and order_date <= ? group by 1""",
        [cutoff, (pd.Timestamp(cutoff) + pd.Timedelta(days=PROXY_DAYS)).date()])
    actual = scores["customer_id"].map(spend.set_index("customer_id")["spend"]).fillna(0)
    return float(spearmanr(scores["predicted_clv_12m"], actual).statistic)


def monitor(warehouse: Path | str | None, json_path: Path | None = None, target: str = "duckdb") -> dict:
    """Compare the latest scoring population with the champion's baseline; write the JSON report and
    append a row to `drift_history` (in the DuckDB file, or on PostgreSQL/Redshift)."""
    reader = WarehouseReader(target, warehouse)
    current, cutoff, model_name, version = latest_scoring(reader)
    proxy = proxy_rank_correlation(reader, cutoff, current)
    registry.use_tracking_store(config.default_tracking_uri(), config.default_artifact_location())
    baseline = registry.load_drift_baseline(model_name, version)
    features = [c for c in baseline.columns if c != "predicted" and c in current.columns
                and pd.api.types.is_numeric_dtype(baseline[c])]
    report = drift_report(baseline, current, features, baseline["predicted"], current["predicted_clv_12m"])
    report.update({"model_name": model_name, "model_version": version, "cutoff": str(cutoff),
                   "customers": len(current), "baseline_rows": len(baseline), "proxy_spearman_30d": proxy,
                   "monitored_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=_finite) + "\n")
    history = pd.DataFrame([{
        "monitored_at": pd.Timestamp(report["monitored_at"]).tz_localize(None), "cutoff_date": cutoff,
        "model_name": model_name, "model_version": version, "status": report["status"],
        "prediction_psi": report["prediction"]["psi"], "drifted_features": ",".join(report["drifted_features"]),
        "proxy_spearman_30d": proxy, "report_json": json.dumps(report, default=_finite),
    }])
    if target != "duckdb":
        from clv import server_warehouse

        server_warehouse.append_rows(target, HISTORY_TABLE, history)
        return report
    with connect(warehouse) as con:
        con.register("new_history", history)
        con.execute(f"create table if not exists {HISTORY_TABLE} as select * from new_history where false")
        con.execute(f"insert into {HISTORY_TABLE} by name select * from new_history")
        con.unregister("new_history")
    return report


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else None
