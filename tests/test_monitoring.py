"""`clv monitor` on a shifted synthetic population raises an alert naming the drifted features."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import duckdb
import mlflow
import pytest

from prefect.events.clients import AssertingPassthroughEventsClient

from clv.cli import main
from clv.synth import SynthConfig, write_synthetic
from flows.weekly import weekly_clv_pipeline

pytestmark = pytest.mark.slow


def shop(path, rate_multiplier):
    return write_synthetic(SynthConfig(customers=2500, seed=3, start=date(2023, 1, 1), days=730,
                                       rate_multiplier=rate_multiplier), path)


def run_week(paths, warehouse):
    return weekly_clv_pipeline(orders=str(paths["orders"]), customers=str(paths["customers"]),
                               events=str(paths["events"]), warehouse=str(warehouse))


def test_shifted_population_raises_an_alert(prefect_server, clv_home, tmp_path, capsys, monkeypatch,
                                           asserting_and_emitting_events_worker):
    started = datetime.now(timezone.utc)  # events of earlier tests stay in the shared client
    normal = shop(tmp_path / "normal", 1.0)
    run_week(normal, clv_home / "normal.duckdb")
    assert main(["monitor", "--warehouse", str(clv_home / "normal.duckdb"), "--json", str(tmp_path / "ok.json")]) == 0
    same = json.loads((tmp_path / "ok.json").read_text())
    assert same["model_version"] == "1"
    # the synthetic shop keeps acquiring and losing customers, so recency features move a year on even
    # without a shift; purchase frequency does not
    frequency_features = ["orders_count_90d", "sessions_count_90d"]
    assert all(same["features"][name]["status"] != "alert" for name in frequency_features)

    shifted = shop(tmp_path / "shifted", 4.0)  # four times the purchase rate
    run_week(shifted, clv_home / "shifted.duckdb")  # scored by the champion, version 1
    # a fresh worker process does not point MLflow at our store: monitor must do it itself
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it
    assert main(["monitor", "--warehouse", str(clv_home / "shifted.duckdb"), "--json", str(tmp_path / "drift.json")]) == 0
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["status"] == "alert" and report["model_version"] == "1"
    assert set(frequency_features) <= set(report["drifted_features"])
    assert all(report["features"][name]["psi"] > 0.25 for name in frequency_features)
    assert report["prediction"]["psi"] > same["prediction"]["psi"]
    assert "Drift status: alert" in capsys.readouterr().out
    with duckdb.connect(str(clv_home / "shifted.duckdb"), read_only=True) as con:
        assert con.execute("select status from drift_history").fetchall() == [("alert",)]

    asserting_and_emitting_events_worker.drain()
    drift_events = [e for client in AssertingPassthroughEventsClient.all for e in client.events
                    if e.event == "clv.drift.detected" and e.occurred >= started]
    # one event per alert (both weeks alert on recency); only the shifted week names frequency features
    assert len(drift_events) == 2
    named = [e for e in drift_events if set(frequency_features) <= set(e.payload["drifted_features"])]
    assert len(named) == 1 and named[0].payload["model_version"] == "1"
    assert named[0].payload["prediction_psi"] == pytest.approx(report["prediction"]["psi"])
    assert named[0].resource.id == "clv.model.clv_xgboost"
