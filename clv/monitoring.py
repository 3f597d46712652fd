"""Monitoring after a scoring run: drift of the latest scoring population against the champion's own
scoring population (stored when the version was trained, so both are populations at a scoring cutoff),
the week's activity against the champion's week, and performance from matured labels of earlier runs.

- Feature and prediction drift: PSI/KS of every model input and of the predictions (models_ml/drift.py);
  the baseline's predictions are those the champion gives its population in the current month (a seasonal
  model's scores move with the calendar: expected, not drift).
- Activity of the 7 days up to the cutoff: orders per known customer (ratio and Poisson z) and mean order
  value (ratio of geometric means, with a z on the log values). A shop whose purchase rate or order values
  change alerts in the week it happens, before any 30- or 365-day feature can move far. When the orders
  reach back a year, each ratio is divided by the same two weeks' ratio 52 weeks earlier (each with a week
  either side): the season the shop had last year too is not drift.
- Performance from matured labels: every run in `clv_scores_history` whose 30 days (proxy) or whole horizon
  has passed is compared with what its customers spent (rank correlation, calibration, MAE, normalized
  Gini); kept in `performance_history`. A real drop (Gini below the backtest's by more than 0.1, calibration
  outside 0.67-1.5, or the 30-day rank correlation 0.1 below the model's earlier runs) is what asks for
  retraining; drift alone only reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from clv import config
from clv.settings import DEFAULTS
from clv.warehouse.embedded import WarehouseReader, connect  # noqa: F401 - WarehouseReader re-exported
from clv.warehouse.engines import open_warehouse
from models_ml import registry
from models_ml.drift import drift_report
from models_ml.metrics import calibration_ratio, mae, normalized_gini

HISTORY_TABLE = "drift_history"
PERFORMANCE_TABLE = "performance_history"
PROXY_DAYS = 30
ACTIVITY_DAYS = 7
RATIO_WARN, RATIO_ALERT = 1.2, 1.3
SEASON_DAYS = 364  # the same week a year earlier, on the same weekdays
SEASON_MARGIN_DAYS = 7  # a year earlier, the week and a week either side (one week alone is too noisy)
GINI_DROP, PROXY_DROP, CALIBRATION_BAND = 0.1, 0.1, (0.67, 1.5)
RANK = {"ok": 0, "warn": 1, "alert": 2}


def latest_scoring(reader: WarehouseReader) -> tuple[pd.DataFrame, object, str, str]:
    """Scores of the latest run (by scored_at) with their features, the cutoff, model name and version."""
    rows = reader.frame("select cutoff_date, model_name, model_version, max(scored_at) as scored_at "
                        "from clv_scores group by 1, 2, 3 order by 4 desc limit 1")
    if rows.empty:
        raise LookupError("clv_scores is empty: run `clv run` before `clv monitor`")
    cutoff, model_name, version = rows.iloc[0]["cutoff_date"], rows.iloc[0]["model_name"], rows.iloc[0]["model_version"]
    frame = reader.frame(
        """select f.*, s.predicted_clv_12m from clv_scores s
           join customer_features f on f.customer_id = s.customer_id and f.cutoff_date = s.cutoff_date
           order by f.customer_id""")
    return frame, pd.Timestamp(cutoff).date(), model_name, version


def week_orders(reader: WarehouseReader, cutoff, days: int = ACTIVITY_DAYS) -> pd.DataFrame:
    start = (pd.Timestamp(cutoff) - pd.Timedelta(days=days)).date()
    return reader.frame("select customer_id, order_date, purchase_value from int_orders "
                        "where order_date > ? and order_date <= ? order by customer_id, order_date", [start, cutoff])


def _ratio_status(ratio: float, z: float) -> str:
    if not np.isfinite(ratio) or ratio <= 0:
        return "ok"
    size = abs(np.log(ratio))
    if size > np.log(RATIO_ALERT) and abs(z) > 3:
        return "alert"
    return "warn" if size > np.log(RATIO_WARN) and abs(z) > 3 else "ok"


@dataclass
class Week:
    """The orders of a span of days (a week, or three a year earlier) and the customers known at its cutoff:
    orders per customer compare spans of the same length."""
    orders: pd.DataFrame
    customers: int

    def __post_init__(self):  # purchases only: an order of returns alone (a cancellation) is not one
        self.orders = self.orders[self.orders["purchase_value"] > 0]

    def log_values(self) -> np.ndarray:
        return np.log(self.orders["purchase_value"].to_numpy(float))


def activity_drift(baseline_orders: pd.DataFrame, baseline_customers: int, current_orders: pd.DataFrame,
                   current_customers: int, last_year: tuple[Week, Week] | None = None) -> dict:
    """The week's purchase rate and order value against the champion's week. With `last_year` (the same two
    weeks 52 weeks earlier, each with a week either side: the champion's, then the current), the change is
    measured against the change the shop made between those weeks a year ago: a seasonal shop's November
    rise is compared with last November's, not alerted on against its July (Online Retail: up to 1.8x
    July's orders per customer in November 2011, at most 1.3x once last year's rise is taken out)."""
    base, cur = Week(baseline_orders, baseline_customers), Week(current_orders, current_customers)
    base_n, cur_n = len(base.orders), len(cur.orders)
    expected = base_n * current_customers / max(baseline_customers, 1)
    rate_ratio = (cur_n / max(current_customers, 1)) / (base_n / max(baseline_customers, 1)) if base_n else np.nan
    rate_z = (cur_n - expected) / np.sqrt(expected) if expected > 0 else 0.0
    base_values, cur_values = base.log_values(), cur.log_values()
    if len(base_values) > 1 and len(cur_values) > 1:
        diff = cur_values.mean() - base_values.mean()
        se = np.sqrt(base_values.var(ddof=1) / len(base_values) + cur_values.var(ddof=1) / len(cur_values))
        value_ratio, value_z = float(np.exp(diff)), float(diff / se) if se > 0 else 0.0
    else:
        value_ratio, value_z = np.nan, 0.0
    rate = {"baseline": base_n / max(baseline_customers, 1), "current": cur_n / max(current_customers, 1),
            "ratio": rate_ratio, "z": float(rate_z), "last_year_ratio": None, "unadjusted_ratio": rate_ratio}
    value = {"baseline": float(np.exp(base_values.mean())) if len(base_values) else None,
             "current": float(np.exp(cur_values.mean())) if len(cur_values) else None,
             "ratio": value_ratio, "z": value_z, "last_year_ratio": None, "unadjusted_ratio": value_ratio}
    if last_year is not None and base_n and cur_n:
        _adjust_by_last_year(rate, value, (base, cur), last_year)
    for signal in (rate, value):
        signal["status"] = _ratio_status(signal["ratio"], signal["z"])
    return {"orders_per_customer_7d": rate, "order_value_7d": value}


def _adjust_by_last_year(rate: dict, value: dict, weeks: tuple[Week, Week], last_year: tuple[Week, Week]) -> None:
    """Divide each ratio by the same weeks' ratio a year earlier, with z on the log of what is left (Poisson
    counts for the rate, the four weeks' log-value variances for the value); a signal whose year-earlier
    weeks hold no orders (or too few values) stays unadjusted."""
    (base, cur), (base_ly, cur_ly) = weeks, last_year
    counts = [len(w.orders) for w in (base, cur, base_ly, cur_ly)]
    if min(counts) > 0 and base_ly.customers > 0 and cur_ly.customers > 0:
        season = (counts[3] / cur_ly.customers) / (counts[2] / base_ly.customers)
        ratio = rate["unadjusted_ratio"] / season
        rate.update(ratio=ratio, last_year_ratio=season,
                    z=float(np.log(ratio) / np.sqrt(sum(1 / n for n in counts))))
    logs = [w.log_values() for w in (base, cur, base_ly, cur_ly)]
    if min(len(v) for v in logs) > 1:
        change = logs[1].mean() - logs[0].mean()
        change_ly = logs[3].mean() - logs[2].mean()
        se = np.sqrt(sum(v.var(ddof=1) / len(v) for v in logs))
        value.update(ratio=float(np.exp(change - change_ly)), last_year_ratio=float(np.exp(change_ly)),
                     z=float((change - change_ly) / se) if se > 0 else 0.0)


def last_year_weeks(reader: WarehouseReader, baseline_cutoff, cutoff) -> tuple[Week, Week] | None:
    """The champion's week and the current week 52 weeks earlier (same weekdays), each with a week either
    side, and the customers known at the middle week's end (a first purchase on or before it); None when the
    shop's orders do not reach back that far."""
    earlier = [(pd.Timestamp(day) - pd.Timedelta(days=SEASON_DAYS)).date() for day in (baseline_cutoff, cutoff)]
    span = ACTIVITY_DAYS + 2 * SEASON_MARGIN_DAYS
    first_day = reader.frame("select min(order_date) as first_day from int_orders")["first_day"].iloc[0]
    if first_day is None or pd.isna(first_day) or pd.Timestamp(first_day) > (
            pd.Timestamp(min(earlier)) - pd.Timedelta(days=ACTIVITY_DAYS + SEASON_MARGIN_DAYS - 1)):
        return None
    known = reader.frame(
        "select count(case when first_purchase <= ? then 1 end) as at_baseline, "
        "count(case when first_purchase <= ? then 1 end) as at_current "
        "from (select customer_id, min(order_date) as first_purchase from int_orders where purchase_value > 0 "
        "group by customer_id) as customers", earlier).iloc[0]
    return tuple(Week(week_orders(reader, (pd.Timestamp(day) + pd.Timedelta(days=SEASON_MARGIN_DAYS)).date(), span),
                      int(known[at])) for day, at in zip(earlier, ("at_baseline", "at_current")))


# Inputs that move with the date by design (the season a seasonal model knows): not drift. The baseline is
# re-scored in the current cutoff's calendar, so a model with a month effect does not alert every month.
CALENDAR_FEATURES = ("cutoff_month",)


def baseline_predictions_in_calendar(model, baseline: pd.DataFrame, current: pd.DataFrame) -> pd.Series:
    """The champion's predictions for its own baseline population as it would score them at the current
    cutoff's calendar values; the logged predictions when the calendar did not change."""
    calendar = {c: current[c].iloc[0] for c in CALENDAR_FEATURES if c in baseline and c in current and len(current)}
    if not calendar or all((baseline[c] == value).all() for c, value in calendar.items()):
        return baseline["predicted"]
    return pd.Series(np.asarray(model.predict(baseline.assign(**calendar)), float), index=baseline.index)


def drift_against_champion(reader: WarehouseReader, current: pd.DataFrame, cutoff, model_name: str) -> dict:
    """Feature, prediction and activity drift of the current population against the served model's own: the
    champion's, or, while no model passed the gates, the population of the version that chose the served
    fallback, with the fallback's predictions for it."""
    champion = registry.champion_version(model_name)
    unmonitored = {"status": "ok", "monitored": False, "model_version": None, "features": {}, "prediction": {},
                   "activity": {}, "drifted_features": []}
    if champion is None:
        found = registry.latest_fallback_version(model_name)
        if found is None:
            return {**unmonitored, "note": "no version gated yet: last year's spend is served; there is no baseline "
                                           "to compare with"}
        spec = found[1]
        version = registry.fallback_watched_since(model_name)
        baseline, baseline_orders = registry.load_drift_baseline(model_name, version)
        if "predicted_fallback" not in baseline:
            return {**unmonitored, "note": f"the fallback's baseline was not logged by version {version} (trained "
                                           "before fallbacks were watched): retrain to watch it"}
        served, expected = f"fallback {spec['type']} (baseline of version {version})", baseline["predicted_fallback"]
        baseline_version = version
    else:
        baseline, baseline_orders = registry.load_drift_baseline(model_name, champion)
        model = registry.load_model_by_alias(model_name, config.CHAMPION_ALIAS)[0]
        served, expected = champion, baseline_predictions_in_calendar(model, baseline, current)
        baseline_version = champion
    features = [c for c in baseline.columns if c not in ("predicted", "predicted_fallback") and c in current.columns
                and c not in CALENDAR_FEATURES and pd.api.types.is_numeric_dtype(baseline[c])]
    report = drift_report(baseline, current, features, expected, current["predicted_clv_12m"])
    report.update({"monitored": True, "model_version": served, "baseline_rows": len(baseline)})
    if baseline_orders is not None:
        known = int(baseline_orders["customers_known"].iloc[0]) if len(baseline_orders) else len(baseline)
        baseline_cutoff = registry.version_tags(model_name, baseline_version).get("data_through")
        last_year = last_year_weeks(reader, baseline_cutoff, cutoff) if baseline_cutoff else None
        report["activity"] = activity_drift(baseline_orders, known, week_orders(reader, cutoff), len(current),
                                            last_year)
        report["activity_compared_with"] = (
            f"the champion's week (to {baseline_cutoff}), each ratio divided by the same two weeks' ratio "
            f"{SEASON_DAYS} days earlier (each with a week either side)" if last_year else
            f"the champion's week (to {baseline_cutoff}); the orders do not reach a year before it, so the "
            "season is not taken out" if baseline_cutoff else
            "the champion's week; its scoring cutoff is not recorded, so the season is not taken out")
        for name, signal in report["activity"].items():
            if signal["status"] == "alert":
                report["drifted_features"] = sorted({*report["drifted_features"], name})
            if RANK[signal["status"]] > RANK[report["status"]]:
                report["status"] = signal["status"]
    return report


def matured_performance(reader: WarehouseReader, horizon_days: int = DEFAULTS.horizon_days, done: set | None = None) -> list[dict]:
    """Runs in clv_scores_history whose proxy window (30 days) or whole horizon has passed, compared with
    what their customers spent. `done` holds (cutoff, model, version, window) already measured."""
    if not reader.exists("clv_scores_history"):
        return []
    last = reader.frame("select max(order_date) as last_day from int_orders").iloc[0]["last_day"]
    if last is None or pd.isna(last):
        return []
    last = pd.Timestamp(last)
    runs = reader.frame("select distinct cutoff_date, model_name, model_version from clv_scores_history "
                        "order by cutoff_date, model_name, model_version")
    rows = []
    for run in runs.itertuples(index=False):
        cutoff = pd.Timestamp(run.cutoff_date)
        for window in (PROXY_DAYS, horizon_days):
            key = (str(cutoff.date()), run.model_name, str(run.model_version), window)
            if cutoff + pd.Timedelta(days=window) > last or (done and key in done):
                continue
            scores = reader.frame("select customer_id, predicted_clv_12m from clv_scores_history where cutoff_date = ? "
                                  "and model_name = ? and model_version = ? order by customer_id",
                                  [cutoff.date(), run.model_name, run.model_version])
            spend = reader.frame("select customer_id, sum(purchase_value - returned_value) as spend from int_orders "
                                 "where order_date > ? and order_date <= ? group by 1",
                                 [cutoff.date(), (cutoff + pd.Timedelta(days=window)).date()])
            actual = scores["customer_id"].map(spend.set_index("customer_id")["spend"]).fillna(0).clip(lower=0)
            predicted = scores["predicted_clv_12m"].to_numpy(float) * window / horizon_days
            y = actual.to_numpy(float)
            rows.append({"cutoff_date": cutoff.date(), "model_name": run.model_name,
                         "model_version": str(run.model_version), "window_days": window, "customers": len(scores),
                         "spearman": float(spearmanr(predicted, y).statistic) if np.ptp(y) > 0 else None,
                         "calibration_ratio": calibration_ratio(y, predicted), "mae": mae(y, predicted),
                         "normalized_gini": normalized_gini(y, predicted)})
    return rows


def performance_status(history: pd.DataFrame, model_name: str, champion: str | None) -> dict:
    """Whether matured labels show a real performance drop of the champion."""
    if champion is None or history.empty:
        return {"degraded": False, "reasons": [], "measured_runs": 0}
    mine = history[(history["model_name"] == model_name) & (history["model_version"].astype(str) == str(champion))]
    mine = mine.assign(cutoff_date=pd.to_datetime(mine["cutoff_date"]).dt.date).sort_values("cutoff_date")
    reasons = []
    full = mine[mine["window_days"] != PROXY_DAYS]
    if not full.empty:
        latest = full.iloc[-1]
        tags = registry.version_tags(model_name, champion)
        expected = float(tags.get("backtest_normalized_gini", "nan"))
        if np.isfinite(expected) and latest["normalized_gini"] < expected - GINI_DROP:
            reasons.append(f"normalized Gini {latest['normalized_gini']:.3f} at cutoff {latest['cutoff_date']} vs "
                           f"{expected:.3f} in the backtest")
        if not CALIBRATION_BAND[0] <= latest["calibration_ratio"] <= CALIBRATION_BAND[1]:
            reasons.append(f"calibration {latest['calibration_ratio']:.3f} at cutoff {latest['cutoff_date']} "
                           f"(band {CALIBRATION_BAND[0]}-{CALIBRATION_BAND[1]})")
    proxy = mine[mine["window_days"] == PROXY_DAYS].dropna(subset=["spearman"])
    if len(proxy) >= 3:
        earlier, latest = proxy.iloc[:-1]["spearman"].median(), proxy.iloc[-1]["spearman"]
        if latest < earlier - PROXY_DROP:
            reasons.append(f"30-day rank correlation {latest:.3f} at cutoff {proxy.iloc[-1]['cutoff_date']} vs "
                           f"{earlier:.3f} for the model's earlier runs")
    return {"degraded": bool(reasons), "reasons": reasons, "measured_runs": int(len(mine))}


def _stored_performance(reader: WarehouseReader) -> pd.DataFrame:
    if not reader.exists(PERFORMANCE_TABLE):
        return pd.DataFrame(columns=["cutoff_date", "model_name", "model_version", "window_days"])
    return reader.frame(f"select * from {PERFORMANCE_TABLE} order by cutoff_date, model_name, model_version, window_days")


def monitor(warehouse: Path | str | None, json_path: Path | None = None, target: str = "duckdb",
            model_name: str = config.MODEL_NAME, horizon_days: int = DEFAULTS.horizon_days) -> dict:
    """Drift of the latest scoring run and performance of matured runs; writes the JSON report and appends
    to `drift_history` and `performance_history` (in the DuckDB file, or on PostgreSQL/Redshift)."""
    reader = WarehouseReader(target, warehouse)
    current, cutoff, served, served_version = latest_scoring(reader)
    config.use_project_tracking_store()
    report = drift_against_champion(reader, current, cutoff, model_name)
    stored = _stored_performance(reader)
    done = {(str(pd.Timestamp(r.cutoff_date).date()), r.model_name, str(r.model_version), int(r.window_days))
            for r in stored.itertuples(index=False)}
    new_rows = pd.DataFrame(matured_performance(reader, horizon_days, done))
    history = pd.concat([stored, new_rows], ignore_index=True) if not new_rows.empty else stored
    performance = performance_status(history, model_name, registry.champion_version(model_name))
    latest_proxy = new_rows[new_rows["window_days"] == PROXY_DAYS] if not new_rows.empty else new_rows
    report.update({
        "model_name": model_name, "served_model": served, "served_version": served_version, "cutoff": str(cutoff),
        "customers": len(current), "performance": performance,
        "performance_measured": new_rows.to_dict(orient="records") if not new_rows.empty else [],
        "proxy_spearman_30d": (float(latest_proxy.iloc[-1]["spearman"]) if not latest_proxy.empty
                               and latest_proxy.iloc[-1]["spearman"] is not None else None),
        "monitored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=_finite) + "\n")
    drift_row = pd.DataFrame([{
        "monitored_at": pd.Timestamp(report["monitored_at"]).tz_localize(None), "cutoff_date": cutoff,
        "model_name": model_name, "model_version": report["model_version"], "status": report["status"],
        "prediction_psi": report.get("prediction", {}).get("psi"),
        "drifted_features": ",".join(report["drifted_features"]),
        "performance_degraded": performance["degraded"], "report_json": json.dumps(report, default=_finite),
    }])
    open_warehouse(target, warehouse).append(HISTORY_TABLE, drift_row)
    if not new_rows.empty:
        new_rows["measured_at"] = pd.Timestamp(report["monitored_at"]).tz_localize(None)
        open_warehouse(target, warehouse).append(PERFORMANCE_TABLE, new_rows)
    return report


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return value if np.isfinite(value) else None
