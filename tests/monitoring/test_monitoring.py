"""Drift monitoring on synthetic shops run week by week, as a team would: each week lands the orders up to
that week and runs the weekly flow, then `clv monitor`. A stationary shop stays quiet for eight weeks;
a shop whose purchase rate doubles, or whose order values rise by half, alerts in the week it happens and
names the signal; the drift event carries it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest
from prefect.events.clients import AssertingPassthroughEventsClient

from clv.cli import main
from clv.synth import SynthConfig, write_synthetic
from flows.weekly import weekly_clv_pipeline

pytestmark = pytest.mark.slow
START, DAYS, WEEKS = date(2022, 1, 1), 1460, 8


def shop(path, **shift):
    return write_synthetic(SynthConfig(customers=6000, seed=21, start=START, days=DAYS + 7 * WEEKS, **shift), path)


def week_cutoff(week: int) -> date:
    """The scoring cutoff of week `week` (0 = the first run, which trains the champion)."""
    return START + timedelta(days=DAYS - 1 + 7 * week)


def run_week(paths, week, warehouse, tmp_path, **options):
    """Land what the shop knew at the end of that week (orders and events up to its cutoff) and run."""
    cutoff = week_cutoff(week)
    folder = tmp_path / f"export-week{week}"
    folder.mkdir(exist_ok=True)
    for entity, column in (("orders", "order_ts"), ("events", "event_ts")):
        duckdb.sql(f"copy (select * from read_parquet('{paths[entity]}') where cast({column} as date) <= '{cutoff}') "
                   f"to '{folder / entity}.parquet' (format parquet)")
    return weekly_clv_pipeline(orders=str(folder / "orders.parquet"), customers=str(paths["customers"]),
                               events=str(folder / "events.parquet"), warehouse=str(warehouse), cutoff=cutoff,
                               **options)


def monitor(warehouse, tmp_path, week) -> dict:
    path = tmp_path / f"drift-{week}.json"
    assert main(["monitor", "--warehouse", str(warehouse), "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_a_stationary_shop_is_quiet_for_eight_weeks(prefect_server, clv_home, tmp_path):
    paths = shop(tmp_path / "shop")
    warehouse = clv_home / "stationary.duckdb"
    first = run_week(paths, 0, warehouse, tmp_path)
    assert first["decision"]["outcome"] == "champion", first["decision"]["gates"]
    for week in range(1, WEEKS + 1):
        run = run_week(paths, week, warehouse, tmp_path)
        assert run["decision"] is None and run["model_version"] == "1"  # the champion serves; nothing retrains
        report = monitor(warehouse, tmp_path, week)
        worst = max(report["features"].items(), key=lambda kv: kv[1]["psi"])
        assert report["status"] == "ok", (week, worst, report["prediction"]["psi"],
                                          {k: (v["ratio"], v["z"], v["status"]) for k, v in report["activity"].items()})
        assert all(f["psi"] < 0.1 for f in report["features"].values()) and report["prediction"]["psi"] < 0.1
        # four years of orders: the week is measured against the champion's after last year's change
        assert all(a["last_year_ratio"] is not None for a in report["activity"].values())
        assert report["activity_compared_with"].startswith(f"the champion's week (to {week_cutoff(0)})")
        assert report["cutoff"] == str(week_cutoff(week)) and not report["performance"]["degraded"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        statuses = con.execute("select status from drift_history order by cutoff_date").fetchall()
        runs = con.execute("select count(distinct cutoff_date), count(*) / count(distinct customer_id) "
                           "from clv_scores_history").fetchall()[0]
    assert statuses == [("ok",)] * WEEKS
    # the 30-day proxy is measured once a run is old enough: week 0's by week 5, and so on
    measured = json.loads((tmp_path / f"drift-{WEEKS}.json").read_text())["performance"]["measured_runs"]
    assert measured >= 1
    assert runs[0] == WEEKS + 1


@pytest.mark.parametrize("shift, signal", [({"shift_rate": 2.0}, "orders_per_customer_7d"),
                                           ({"shift_value": 1.5}, "order_value_7d")])
def test_a_shop_that_changes_alerts_in_that_week(prefect_server, clv_home, tmp_path, shift, signal,
                                                 asserting_and_emitting_events_worker):
    started = datetime.now(timezone.utc)  # events of earlier tests stay in the shared client
    shift_week = 2
    paths = shop(tmp_path / "shop", shift_day=DAYS + 7 * (shift_week - 1), **shift)
    warehouse = clv_home / "shifted.duckdb"
    assert run_week(paths, 0, warehouse, tmp_path)["decision"]["outcome"] == "champion"
    run_week(paths, 1, warehouse, tmp_path)
    assert monitor(warehouse, tmp_path, 1)["status"] == "ok"  # the week before the change
    run_week(paths, shift_week, warehouse, tmp_path)
    report = monitor(warehouse, tmp_path, shift_week)
    assert report["status"] == "alert" and signal in report["drifted_features"], report["activity"]
    assert report["activity"][signal]["ratio"] > 1.3 and report["activity"][signal]["last_year_ratio"] is not None
    from tests.flows.test_weekly_flow import latest_table_artifacts

    [first, *_] = latest_table_artifacts("clv-drift-table")["clv-drift-table"]  # worst first, as the UI lists it
    assert first["status"] == "alert" and first["signal"] in report["drifted_features"]

    asserting_and_emitting_events_worker.drain()
    events = [e for client in AssertingPassthroughEventsClient.all for e in client.events
              if e.event == "clv.drift.detected" and e.occurred >= started]
    assert len(events) == 1 and signal in events[0].payload["drifted_features"]
    assert events[0].resource.id == "clv.model.clv_xgboost" and events[0].payload["model_version"] == "1"


@pytest.mark.parametrize("shifted", [False, True], ids=["unchanged", "doubled-rate"])
def test_the_served_fallback_is_watched_quiet_on_an_unchanged_week_and_alerting_on_a_doubled_rate(
        prefect_server, clv_home, tmp_path, shifted):
    """While no trained model passes the gates (here a Gini floor no model reaches), the fallback the backtest
    chose is served and watched against the population of the version that first chose it, with the
    fallback's own predictions: an unchanged week stays quiet, a week whose purchase rate doubles alerts.
    Week 1 crosses a month end, so a new version is trained and fails again: the watch does not restart."""
    never_passes = {"gini_floor": 0.99}
    paths = write_synthetic(SynthConfig(customers=3000, seed=21, start=START, days=DAYS + 14,
                                        **({"shift_day": DAYS, "shift_rate": 2.0} if shifted else {})),
                            tmp_path / f"shop-{shifted}")
    warehouse = clv_home / f"fallback-{shifted}.duckdb"
    first = run_week(paths, 0, warehouse, tmp_path, gate_config=never_passes)
    assert first["decision"]["outcome"] == "not_served" and first["model_version"] in ("fallback", "baseline")
    assert first["served_model"] == first["decision"]["fallback"]["type"]
    second = run_week(paths, 1, warehouse, tmp_path, gate_config=never_passes)
    assert second["decision"]["version"] == "2" and second["decision"]["outcome"] == "not_served"
    report = monitor(warehouse, tmp_path, f"fallback-{shifted}")
    assert report["monitored"] and report["model_version"] == (f"fallback {first['served_model']} (baseline of "
                                                               "version 1)"), report["model_version"]
    assert report["prediction"]["psi"] > 0  # a week later: not the population compared with itself
    if shifted:
        assert report["status"] == "alert" and "orders_per_customer_7d" in report["drifted_features"], report
    else:
        assert report["status"] == "ok", (report["prediction"], report["activity"])
