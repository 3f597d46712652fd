"""The champion/challenger lifecycle end to end, flows run under Prefect's test server, on a synthetic
shop landed week by week: v1 champion -> monitor -> retraining only when something is new (a drift alert
without new data does nothing; new orders or a performance trigger retrain, and an identical result is
"no change") -> a challenger from another configuration -> shadow -> promote -> rollback, and the next
scoring uses the restored champion. The automations of prefect.yaml chain these same flows."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pandas as pd
import pytest
from prefect.events.clients import AssertingPassthroughEventsClient

from clv.cli import main
from flows.monitor import DRIFT_EVENT, PERFORMANCE_EVENT, monitor_flow
from flows.retrain import retrain_flow
from flows.shadow import shadow_flow
from models_ml import registry
from tests.conftest import assert_no_clear_text
from tests.monitoring.test_monitoring import run_week, week_cutoff

pytestmark = pytest.mark.slow


def land_week(shop, week, tmp_path, warehouse, **options):
    return run_week(shop, week, warehouse, tmp_path, **options)


def test_lifecycle_from_monitoring_to_rollback(prefect_server, clv_home, tmp_path, monkeypatch, synthetic_shop,
                                               asserting_and_emitting_events_worker):
    started = datetime.now(timezone.utc)  # events of earlier tests stay in the shared client
    warehouse = str(clv_home / "warehouse.duckdb")
    monkeypatch.setenv("CLV_PII_HASH_KEY", "lifecycle-secret")
    first = land_week(synthetic_shop, 0, tmp_path, warehouse)
    assert first["decision"]["outcome"] == "champion" and registry.champion_version("clv_xgboost") == "1"
    # the synthetic customers carry e-mail addresses and names: none is in any warehouse table
    people = pd.read_parquet(synthetic_shop["customers"], columns=["email", "name"]).sample(40, random_state=1)
    with duckdb.connect(warehouse, read_only=True) as con:
        assert_no_clear_text(con, [*people["email"], *people["name"]])
        assert con.execute("select count(email_hash) from raw.customers").fetchall()[0][0] == 3000

    report = monitor_flow(warehouse=warehouse)
    assert report["status"] == "ok" and not report["performance"]["degraded"]
    # a drift event with nothing new since the champion's data: retraining declines, saying why
    skipped = retrain_flow(warehouse=warehouse, reason="clv.drift.detected")
    assert skipped["outcome"] == "skipped" and "nothing new" in skipped["reason"]
    assert shadow_flow(warehouse=warehouse)["skipped"]

    # a week later new orders have landed and the 2024-12-31 snapshot's year of labels has matured: the
    # retraining learns from one more snapshot with the champion's configuration (refit on the same cutoffs
    # inside the same paired bootstrap: a measured tie) and becomes challenger
    land_week(synthetic_shop, 1, tmp_path, warehouse)
    retrained = retrain_flow(warehouse=warehouse, reason="clv.drift.detected")
    assert retrained["outcome"] == "challenger" and "landed after the champion's data" in retrained["why"]
    assert retrained["version"] == "2" and retrained["same_configuration_as_champion"]
    gates = {g["gate"]: g for g in retrained["gates"]}
    assert gates["beats_champion"]["passed"] and "tie on deviance" in gates["beats_champion"]["detail"]
    assert "(same configuration as the champion, refit on the same cutoffs)" in gates["beats_champion"]["detail"]
    # a performance trigger always retrains; on the same data the same model is "no change", not a failure
    again = retrain_flow(warehouse=warehouse, reason="clv.performance.degraded")
    assert again["outcome"] == "no_change" and again["version"] == "2"

    # another configuration, refit on the same cutoffs as the champion's: a challenger when not worse
    other = {"type": "xgboost_offset", "params": {"max_depth": 2, "n_estimators": 200}}
    second = land_week(synthetic_shop, 1, tmp_path, warehouse, retrain=True, model_spec=other)
    assert second["decision"]["outcome"] == "challenger", second["decision"]["gates"]
    assert "vs champion" in {g["gate"]: g for g in second["decision"]["gates"]}["beats_champion"]["detail"]
    assert registry.champion_version("clv_xgboost", "challenger") == "3"
    shadow = shadow_flow(warehouse=warehouse)
    assert shadow["champion_version"] == "1" and shadow["challenger_version"] == "3" and shadow["passed"]

    monkeypatch.setenv("CLV_OPERATOR", "lead analyst")
    assert main(["promote", "3", "--reason", "shadow run passed"]) == 0
    assert registry.champion_version("clv_xgboost") == "3"
    assert main(["rollback", "--reason", "campaign results disagree"]) == 0
    assert registry.champion_version("clv_xgboost") == "1"

    third = land_week(synthetic_shop, 2, tmp_path, warehouse)
    with duckdb.connect(warehouse, read_only=True) as con:
        versions = con.execute("select distinct model_version from clv_scores").fetchall()
        history = con.execute("select cutoff_date, model_version, count(*) from clv_scores_history "
                              "group by 1, 2 order by 1").fetchall()
    assert versions == [("1",)] and third["model_version"] == "1"  # scored by the restored champion
    assert [(str(c), v) for c, v, _ in history] == [(str(week_cutoff(w)), "1") for w in range(3)]

    asserting_and_emitting_events_worker.drain()
    drift_events = [e for client in AssertingPassthroughEventsClient.all for e in client.events
                    if e.event in (DRIFT_EVENT, PERFORMANCE_EVENT) and e.occurred >= started]
    assert drift_events == []  # a stationary shop: the monitor never asked for anything
