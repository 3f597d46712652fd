"""Monitoring after a scoring run: report, history rows, Prefect artifact, and two events an automation
can act on: `clv.drift.detected` (drift alert: reported, and a retrain runs only if there is new data)
and `clv.performance.degraded` (matured labels show a real drop: retrain)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.exclusive import exclusive_warehouse
from clv import config
from clv.monitoring import monitor
from clv.settings import load_settings
from clv.warehouse.engines import resolve_target

DRIFT_EVENT = "clv.drift.detected"
PERFORMANCE_EVENT = "clv.performance.degraded"


@flow(name="monitor-drift", log_prints=True)
def monitor_flow(warehouse: str | None = None, json_path: str | None = None, target: str | None = None,
                 settings_file: str | None = None, settings_variable: str | None = None) -> dict:
    """Drift of the latest scoring run against the champion's own scoring population, and performance of
    matured runs. Warehouse and target from the parameters, else the settings file, else the defaults.

    Args:
        warehouse: DuckDB warehouse file (target duckdb); empty: the settings file's, else the default.
        json_path: Where to write the monitoring report as JSON (optional).
        target: Warehouse engine: duckdb, postgres or redshift.
        settings_file: The team's settings file (clv-settings.yml).
        settings_variable: Prefect Variable whose settings win over the file's (deployments: clv_settings; `clv settings push` fills it, the UI edits it).
    """
    settings = load_settings(settings_file, settings_variable, warehouse=warehouse, target=target)
    target = resolve_target(settings.target)
    warehouse = str(Path(settings.warehouse or config.default_warehouse()).resolve())
    with exclusive_warehouse(target, warehouse, "monitor-drift"):
        report = monitor(warehouse, Path(json_path) if json_path else None, target, settings.model_name,
                         settings.horizon_days)
        create_markdown_artifact(key="clv-drift", markdown=report_markdown(report),
                                 description="Drift and matured performance of the latest scoring run")
        if report.get("monitored"):
            create_table_artifact(key="clv-drift-table", table=drift_table(report),
                                  description=f"Drift of cutoff {report.get('cutoff')} against champion "
                                              f"v{report['model_version']}: {report['status']}")
        resource = {"prefect.resource.id": f"clv.model.{report['model_name']}"}
        logger = get_run_logger()
        if report["status"] == "alert":
            emit_event(event=DRIFT_EVENT, resource=resource, payload={
                "model_version": report["model_version"], "cutoff": report["cutoff"],
                "prediction_psi": report["prediction"]["psi"],
                "drifted_features": {n: _size(report, n) for n in report["drifted_features"]}})
            logger.warning("drift alert: %s", ", ".join(report["drifted_features"]) or "predictions")
        if report["performance"]["degraded"]:
            emit_event(event=PERFORMANCE_EVENT, resource=resource, payload={
                "model_version": report["model_version"], "cutoff": report["cutoff"],
                "reasons": report["performance"]["reasons"]})
            logger.warning("performance degraded: %s", "; ".join(report["performance"]["reasons"]))
        return report


def drift_table(report: dict) -> list[dict]:
    """One row per signal: predictions, each feature (PSI, KS) and the week's activity (ratio), worst first."""
    rows = [{"signal": "predictions", "measure": "PSI", "value": round(report["prediction"]["psi"], 4),
             "ks_stat": round(report["prediction"]["ks_stat"], 4), "status": report["prediction"]["status"]}]
    rows += [{"signal": name, "measure": "PSI", "value": round(f["psi"], 4), "ks_stat": round(f["ks_stat"], 4),
              "status": f["status"]} for name, f in report["features"].items()]
    rows += [{"signal": name, "measure": "ratio to the champion's week" + (
                  "" if a.get("last_year_ratio") is None else ", after last year's change"),
              "value": None if a.get("ratio") is None else round(a["ratio"], 3), "ks_stat": None,
              "status": a["status"]} for name, a in report.get("activity", {}).items()]
    order = {"alert": 0, "warning": 1, "ok": 2}
    return sorted(rows, key=lambda row: (order.get(row["status"], 3), row["signal"]))


def _size(report: dict, name: str) -> float:
    if name in report["features"]:
        return report["features"][name]["psi"]
    return report["activity"][name]["ratio"]


def _optional(ratio) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


def report_markdown(report: dict) -> str:
    if not report.get("monitored"):
        head = f"# Drift: not monitored\n\n{report.get('note', '')}\n"
    else:
        head = (f"# Drift: {report['status']}\n\nChampion {report['model_name']} v{report['model_version']}, cutoff "
                f"{report['cutoff']}, {report['customers']:,} customers. Prediction PSI "
                f"{report['prediction']['psi']:.3f}. Drifted: {', '.join(report['drifted_features']) or 'none'}.\n")
    rows = "\n".join(f"| {name} | {f['psi']:.3f} | {f['ks_stat']:.3f} | {f['status']} |"
                     for name, f in sorted(report.get("features", {}).items(), key=lambda kv: -kv[1]["psi"]))
    activity = "\n".join(f"| {name} | {a['ratio']:.3f} | {_optional(a.get('unadjusted_ratio'))} | "
                         f"{_optional(a.get('last_year_ratio'))} | {a['z']:.1f} | {a['status']} |"
                         for name, a in report.get("activity", {}).items())
    performance = report["performance"]
    return (head + f"\n| feature | PSI | KS | status |\n|---|---|---|---|\n{rows}\n"
            f"\n| activity (7 days) | ratio | to the champion's week | a year earlier | z | status |\n"
            f"|---|---|---|---|---|---|\n{activity}\n"
            f"{report.get('activity_compared_with', '')}.\n"
            f"\nPerformance from matured labels: {'DEGRADED: ' + '; '.join(performance['reasons']) if performance['degraded'] else 'no drop'}"
            f" ({performance['measured_runs']} measured runs of the champion).\n")
