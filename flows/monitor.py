"""Drift monitoring after a scoring run: report, history row, Prefect artifact, and the event
`clv.drift.detected` when the status is alert (an automation can trigger retraining on it)."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from clv import config
from clv.monitoring import monitor

DRIFT_EVENT = "clv.drift.detected"


@flow(name="monitor-drift", log_prints=True)
def monitor_flow(warehouse: str | None = None, json_path: str | None = None, target: str | None = None) -> dict:
    """PSI/KS of every model feature and of the predictions against the champion's training baseline.
    `target`: the warehouse engine (default CLV_DBT_TARGET, else duckdb)."""
    target = target or os.environ.get("CLV_DBT_TARGET", "duckdb")
    warehouse = str(Path(warehouse or config.default_warehouse()).resolve())
    report = monitor(warehouse, Path(json_path) if json_path else None, target)
    rows = "\n".join(f"| {name} | {f['psi']:.3f} | {f['ks_stat']:.3f} | {f['status']} |"
                     for name, f in sorted(report["features"].items(), key=lambda kv: -kv[1]["psi"]))
    create_markdown_artifact(
        key="clv-drift",
        markdown=(f"# Drift: {report['status']}\n\nModel {report['model_name']} v{report['model_version']}, "
                  f"cutoff {report['cutoff']}, {report['customers']:,} customers. Prediction PSI "
                  f"{report['prediction']['psi']:.3f}. Drifted: {', '.join(report['drifted_features']) or 'none'}.\n\n"
                  f"| feature | PSI | KS | status |\n|---|---|---|---|\n{rows}\n"),
        description="Drift of the latest scoring run",
    )
    if report["status"] == "alert":
        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": f"clv.model.{report['model_name']}"},
            payload={"model_version": report["model_version"], "cutoff": report["cutoff"],
                     "prediction_psi": report["prediction"]["psi"],
                     "drifted_features": {n: report["features"][n]["psi"] for n in report["drifted_features"]}},
        )
        get_run_logger().warning("drift alert: %s", ", ".join(report["drifted_features"]) or "predictions")
    return report
