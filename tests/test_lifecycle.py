"""The champion/challenger lifecycle end to end, flows run under Prefect's test server:
v1 -> champion; drifted data -> alert event -> retrain v2 -> challenger -> shadow -> promote -> rollback,
and the next scoring uses the restored champion."""

from __future__ import annotations

from datetime import date, datetime, timezone

import duckdb
import pandas as pd
import pytest
from prefect.events.clients import AssertingPassthroughEventsClient

from clv.cli import main
from clv.synth import SynthConfig, write_synthetic
from flows.monitor import monitor_flow
from flows.shadow import shadow_flow
from flows.weekly import weekly_clv_pipeline
from models_ml import registry
from tests.conftest import assert_no_clear_text

pytestmark = pytest.mark.slow


def test_lifecycle_from_drift_to_rollback(prefect_server, clv_home, tmp_path, monkeypatch,
                                          asserting_and_emitting_events_worker):
    started = datetime.now(timezone.utc)  # events of earlier tests stay in the shared client
    def shop(name, rate):
        paths = write_synthetic(SynthConfig(customers=2500, seed=5, start=date(2023, 1, 1), days=730,
                                            rate_multiplier=rate), tmp_path / name)
        return {k: str(v) for k, v in paths.items()}

    warehouse = str(clv_home / "warehouse.duckdb")
    monkeypatch.setenv("CLV_PII_HASH_KEY", "lifecycle-secret")
    week1 = shop("week1", 1.0)
    first = weekly_clv_pipeline(**week1, warehouse=warehouse)
    assert first["trained_is_champion"] and registry.champion_version("clv_xgboost") == "1"
    # the synthetic customers carry e-mail addresses and names: none is in any warehouse table
    people = pd.read_parquet(week1["customers"], columns=["email", "name"]).sample(40, random_state=1)
    with duckdb.connect(warehouse, read_only=True) as con:
        assert_no_clear_text(con, [*people["email"], *people["name"]])
        assert con.execute("select count(email_hash) from raw.customers").fetchall()[0][0] == 2500

    drifted = shop("week2", 4.0)
    drifted_warehouse = str(clv_home / "drifted.duckdb")
    # the weekly run on drifted data registers v2; the gates (with the fairness floor off: channels differ
    # by design in the synthetic shop) decide on challenger
    relaxed = {"disparate_impact_min": 0.0, "require_beating_champion": False}
    second = weekly_clv_pipeline(**drifted, warehouse=drifted_warehouse, gate_config=relaxed)
    report = monitor_flow(warehouse=drifted_warehouse)
    assert report["status"] == "alert" and report["model_version"] == "1"
    asserting_and_emitting_events_worker.drain()
    events = [e for client in AssertingPassthroughEventsClient.all for e in client.events
              if e.event == "clv.drift.detected" and e.occurred >= started]
    assert events and events[-1].payload["model_version"] == "1"

    assert second["trained_version"] == "2" and second["gates"]["passed"]
    assert registry.champion_version("clv_xgboost", "challenger") == "2"
    shadow = shadow_flow(warehouse=drifted_warehouse, max_mean_shift=10.0)
    assert shadow["champion_version"] == "1" and shadow["challenger_version"] == "2" and shadow["passed"]

    monkeypatch.setenv("CLV_OPERATOR", "lead analyst")
    assert main(["promote", "2", "--reason", "shadow run passed"]) == 0
    assert registry.champion_version("clv_xgboost") == "2"
    assert main(["rollback", "--reason", "campaign results disagree"]) == 0
    assert registry.champion_version("clv_xgboost") == "1"

    third = weekly_clv_pipeline(**drifted, warehouse=drifted_warehouse, gate_config=relaxed)
    with duckdb.connect(drifted_warehouse, read_only=True) as con:
        versions = con.execute("select distinct model_version from clv_scores").fetchall()
        history = con.execute("select model_version, count(*) from clv_scores_history group by 1 order by 1").fetchall()
    assert versions == [("1",)] and third["model_version"] == "1"  # scored by the restored champion
    assert [v for v, _ in history] == ["1"]  # every scoring run so far used version 1
