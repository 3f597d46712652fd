"""The same dbt project on DuckDB and on a real PostgreSQL server gives the same features and labels,
including the as-of reads (a corrected and a deleted order line landed after a first build) and the
incremental rebuild that follows."""

from __future__ import annotations

import json
import os

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv.ingest.landing import land_file
from clv.warehouse.postgres import PostgresRawSink
from clv.snapshots import plan_snapshots
from clv.transform import dbt_vars, run_dbt

pytestmark = pytest.mark.postgres
PLAN = plan_snapshots("2009-12-01", "2011-12-09", 365)
VARS = dbt_vars(cutoff="2011-12-09", horizon_days=365, training_cutoffs=PLAN.training_cutoffs,
                label_horizons=PLAN.label_horizons)
RELATIONS = {
    "customer_features": ["cutoff_date", "customer_id"],
    "customer_labels": ["cutoff_date", "customer_id", "horizon_days"],
    "int_cutoffs": ["cutoff_date"],
    "int_order_versions": ["order_id", "valid_from", "order_date", "customer_id"],
    "int_customer_sessions": ["customer_id", "session_id"],
    "int_customers_changed_since_carried": ["cutoff_date", "customer_id"],
    "cleaning_summary": ["rule", "cutoff_date"],
}


# Order lines the source identifies, landed after the first build with their history of changes (one
# load, ordered by updated_at): L1 corrected from 2 to 5 units on 2011-06-15, L2 deleted on 2011-07-01.
CORRECTIONS = pd.DataFrame({
    "customer_id": ["12348"] * 4, "order_id": ["X1", "X1", "X2", "X2"], "line_id": ["L1", "L1", "L2", "L2"],
    "order_ts": pd.to_datetime(["2011-03-01 10:00"] * 2 + ["2011-02-01 10:00"] * 2),
    "product_id": ["p1", "p1", "p2", "p2"], "quantity": [2.0, 5.0, 1.0, 1.0], "unit_price": [3.0, 3.0, 5.0, 5.0],
    "updated_at": pd.to_datetime(["2011-03-01 10:00", "2011-06-15 00:00", "2011-02-01 10:00", "2011-07-01 00:00"]),
    "deleted_at": pd.to_datetime([None, None, None, "2011-07-01"]),
})
# Web sessions of a known customer: S1 runs over midnight and its last events land with the corrections,
# S2 lands then too (the second build recomputes both on each engine, incrementally).
EVENTS = pd.DataFrame({
    "customer_id": ["12348"] * 5, "session_id": ["S1", "S1", "S1", "S1", "S2"],
    "event_ts": pd.to_datetime(["2011-11-30 23:50", "2011-11-30 23:55", "2011-12-01 00:05", "2011-12-01 00:10",
                                "2011-12-05 09:00"]),
    "event_type": ["session_start", "add_to_cart", "add_to_cart", "purchase", "session_start"],
    "session_duration_s": [1200.0] * 4 + [60.0],
})


@pytest.fixture(scope="module")
def both_engines(postgres_database, retail_sample, tmp_path_factory):
    """Land the Online Retail II sample into each engine and run the dbt build on each; then land
    corrections and build again (incrementally) on each."""
    home = tmp_path_factory.mktemp("engines")
    os.environ["CLV_HOME"] = str(home)
    warehouse = home / "warehouse.duckdb"
    early_events, late_events = home / "events-early.parquet", home / "events-late.parquet"
    EVENTS.iloc[:2].to_parquet(early_events, index=False)
    EVENTS.iloc[2:].to_parquet(late_events, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, "orders", retail_sample)
        land_file(con, "events", early_events)
    with duckdb.connect() as scratch:
        results = land_file(scratch, "orders", retail_sample, PostgresRawSink(scratch, postgres_database))
        again = land_file(scratch, "orders", retail_sample, PostgresRawSink(scratch, postgres_database))
        land_file(scratch, "events", early_events, PostgresRawSink(scratch, postgres_database))
    run_dbt(["build"], warehouse=warehouse, variables=VARS, target="duckdb")
    run_dbt(["build"], variables=VARS, target="postgres")
    corrections = home / "corrections.parquet"
    CORRECTIONS.to_parquet(corrections, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, "orders", corrections)
        land_file(con, "events", late_events)
    with duckdb.connect() as scratch:
        land_file(scratch, "orders", corrections, PostgresRawSink(scratch, postgres_database))
        land_file(scratch, "events", late_events, PostgresRawSink(scratch, postgres_database))
    run_dbt(["build"], warehouse=warehouse, variables=VARS, target="duckdb")
    run_dbt(["build"], variables=VARS, target="postgres")
    return warehouse, postgres_database, results, again


def read_duckdb(warehouse, relation, order):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select * from {relation} order by {', '.join(order)}").df()


def read_postgres(settings, relation, order):
    conn = settings.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"select * from {relation} order by {', '.join(order)}")
            return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    finally:
        conn.close()


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Engine-neutral values: dates as text, numbers (Decimal, ints, floats) as float64, NULL as NaN/None."""
    out = frame.copy()
    for column in out.columns:
        values = out[column].astype(object).where(out[column].notna(), None)
        if column.endswith("_date") or column == "carried_from":
            out[column] = [None if v is None else str(pd.Timestamp(v).date()) for v in values]
            continue
        if column in ("valid_from", "valid_to"):
            out[column] = [None if v is None else str(pd.Timestamp(v)) for v in values]
            continue
        try:
            out[column] = pd.to_numeric(values, errors="raise").astype("float64")
        except (TypeError, ValueError):
            out[column] = values  # text
    return out


def test_postgres_landing_is_idempotent(both_engines):
    _, settings, results, again = both_engines
    orders = results[0]
    assert orders.rows_inserted + orders.rows_quarantined == orders.rows_read > 0
    assert orders.rows_quarantined > 0  # the sample keeps some lines without a customer id
    assert [r.rows_inserted for r in again] == [0, 0]
    # the re-landed lines without a customer id fail their check again, and are stored once
    assert (orders.rows_quarantined_new, again[0].rows_quarantined, again[0].rows_quarantined_new) == (
        orders.rows_quarantined, orders.rows_quarantined, 0)
    counts = read_postgres(settings, "raw.orders", ["row_key"])
    assert len(counts) == orders.rows_inserted + len(CORRECTIONS) and counts["row_key"].is_unique
    quarantined = read_postgres(settings, "raw.quarantine", ["row_key"])
    assert len(quarantined) == orders.rows_quarantined and quarantined["reason"].str.startswith("customer_id").all()
    # the quarantine's counts by reason, read back from PostgreSQL: the re-landed export quarantines the
    # share of the first load, its usual one, so only the first load (no history) warns about it
    loads = read_postgres(settings, "raw.loads", ["loaded_at"])
    first = loads[loads["load_id"] == orders.load_id]["quarantined_by_reason"].iloc[0]
    assert json.loads(first) == {quarantined["reason"].iloc[0]: orders.rows_quarantined}
    assert (orders.status, again[0].status) == ("warnings", "passed")


@pytest.mark.parametrize("relation", list(RELATIONS))
def test_relation_is_identical_on_duckdb_and_postgres(both_engines, relation):
    warehouse, settings, _, _ = both_engines
    order = RELATIONS[relation]
    # when each engine's copy landed: the columns that may differ
    landing_times = ["last_loaded_at", "carried_landed_through"]
    on_duckdb = normalise(read_duckdb(warehouse, relation, order).drop(columns=landing_times, errors="ignore"))
    on_postgres = normalise(read_postgres(settings, relation, order).drop(columns=landing_times, errors="ignore"))
    assert len(on_duckdb) > 0
    assert list(on_duckdb.columns) == list(on_postgres.columns)
    for column in on_duckdb.columns:
        left, right = on_duckdb[column], on_postgres[column]
        if pd.api.types.is_float_dtype(left):
            np.testing.assert_allclose(left.to_numpy(), right.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=column)
        else:
            assert left.tolist() == right.tolist(), column


def test_sessions_completed_by_a_later_load_are_recomputed_on_both_engines(both_engines):
    warehouse, settings, _, _ = both_engines
    for sessions in (read_duckdb(warehouse, "int_customer_sessions", ["session_id"]),
                     read_postgres(settings, "int_customer_sessions", ["session_id"])):
        assert sessions["session_id"].tolist() == ["S1", "S2"]
        assert sessions["add_to_cart_count"].tolist() == [2, 0]  # one landed early, one late
        assert [str(d) for d in pd.to_datetime(sessions["last_event_date"]).dt.date] == ["2011-12-01", "2011-12-05"]


CONTRACTED = ["customer_features", "customer_labels", "customer_training_set"]
# information_schema's names for the contract's types on each engine
ENGINE_TYPE = {"VARCHAR": "text", "DATE": "date", "BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double precision"}


@pytest.mark.parametrize("relation", CONTRACTED)
def test_contracted_tables_have_the_declared_types_on_both_engines(both_engines, relation):
    """What Python and BI read has one shape on every engine: the types _marts.yml declares (on PostgreSQL
    a count summed is numeric and a day difference integer unless the contract casts them)."""
    import yaml

    from clv.config import DBT_PROJECT_DIR

    warehouse, settings, _, _ = both_engines
    marts = DBT_PROJECT_DIR / "models" / "marts"
    declared = {m["name"]: m for f in ("_marts.yml", "_training_set.yml")
                for m in yaml.safe_load((marts / f).read_text())["models"]}[relation]
    sql = "select column_name, data_type from information_schema.columns where table_name = '{}' order by ordinal_position"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        on_duckdb = [(name, ENGINE_TYPE[t]) for name, t in con.execute(sql.format(relation)).fetchall()]
    conn = settings.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.format(relation))
            on_postgres = cur.fetchall()
    finally:
        conn.close()
    as_reported = {"text": "text", "date": "date", "bigint": "bigint", "integer": "integer", "float8": "double precision"}
    assert on_duckdb == on_postgres == [(c["name"], as_reported[c["data_type"]]) for c in declared["columns"]]


def test_clv_features_builds_on_postgres(prefect_server, both_engines, retail_sample, capsys):
    from clv.cli import main

    assert main(["features", "--cutoff", "2010-12-09", "--target", "postgres", "--orders", str(retail_sample)]) == 0
    out = capsys.readouterr().out
    assert "Features built on postgres" in out and "customer_features at 2010-12-09" in out
    _, settings, _, _ = both_engines
    rows = read_postgres(settings, "int_cutoffs", ["cutoff_date"])
    assert str(rows[rows["cutoff_role"] == "scoring"]["cutoff_date"].item()) == "2010-12-09"


def test_redshift_profile_parses_offline(tmp_path, monkeypatch):
    """dbt-redshift cannot compile without a live cluster; parsing checks the profile and every model."""
    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    run_dbt(["parse"], target="redshift")
    assert (tmp_path / "dbt" / "target" / "manifest.json").exists()


def test_weekly_flow_on_postgres(prefect_server, both_engines, retail_sample, clv_home):
    """The whole weekly flow with the warehouse on PostgreSQL: one setting, the same flow code, the same
    decisions (on this 1-in-12 sample the model does not beat last year's spend, which is served)."""
    from flows.weekly import weekly_clv_pipeline
    from tests.flows.test_weekly_flow import customers_known_at_last_order_date

    _, settings, _, _ = both_engines
    first = weekly_clv_pipeline(orders=str(retail_sample), target="postgres", cutoff="2011-12-09")
    scores = read_postgres(settings, "clv_scores", ["customer_id"])
    expected = customers_known_at_last_order_date(retail_sample)
    assert set(scores["customer_id"]) == expected and first["customers_scored"] == len(expected)
    assert first["decision"]["outcome"] == "not_served" and first["decision"]["backtest"]["horizon_days"] == 180
    assert scores["model_name"].eq("last_period").all() and scores["model_version"].eq("baseline").all()
    second = weekly_clv_pipeline(orders=str(retail_sample), target="postgres", cutoff="2011-12-09")
    assert second["decision"]["outcome"] == "no_change"
    history = read_postgres(settings, "clv_scores_history", ["customer_id"])
    assert len(history) == len(expected)  # the same week twice: its rows replaced, not appended
    assert len(read_postgres(settings, "clv_scores", ["customer_id"])) == len(expected)

    # monitoring reads and records on the same warehouse; without a champion the fallback is watched against
    # the population of the version that chose it
    from flows.monitor import monitor_flow

    report = monitor_flow(target="postgres")
    assert report["customers"] == len(expected) and report["served_model"] == "last_period"
    assert report["monitored"] and report["model_version"] == "fallback last_period (baseline of version 1)"
    assert report["status"] == "ok"
    drift = read_postgres(settings, "drift_history", ["monitored_at"])
    assert len(drift) == 1 and drift["status"].item() == report["status"]


def test_shadow_run_on_postgres(prefect_server, both_engines, clv_home):
    """Champion and challenger side by side on the PostgreSQL warehouse: the same flow code as on DuckDB,
    its records written there."""
    from mlflow import MlflowClient

    from clv import config
    from clv.warehouse import server as server_warehouse
    from flows.shadow import shadow_flow
    from models_ml import registry
    from models_ml.training import train_and_evaluate
    from tests.models_ml.test_models import plan, synthetic_snapshots

    _, settings, _, _ = both_engines
    features = read_postgres(settings, "customer_features", ["customer_id"])
    cutoff = features["cutoff_date"].max()
    server_warehouse.publish_scores("postgres", pd.DataFrame({
        "customer_id": ["x"], "cutoff_date": [cutoff], "predicted_clv_12m": [1.0], "model_name": "m",
        "model_version": "1"}), allow_older_cutoff=True)
    config.use_project_tracking_store()
    data = synthetic_snapshots(300)
    for seed in (0, 1):  # two versions trained on the same columns the PostgreSQL features hold
        result = train_and_evaluate(synthetic_snapshots(300, seed=seed), plan(), resamples=30)
        registry.log_and_register(result, data, "clv_xgboost", {"scoring_cutoff": str(cutoff)})
    registry.make_champion("clv_xgboost", "1", "test", "shadow on postgres", force=True)  # not gated here
    MlflowClient().set_registered_model_alias("clv_xgboost", "challenger", "2")

    shadow = shadow_flow(target="postgres")
    customers = int((features["cutoff_date"] == cutoff).sum())
    assert (shadow["champion_version"], shadow["challenger_version"], shadow["customers"]) == ("1", "2", customers)
    assert len(read_postgres(settings, "shadow_scores", ["customer_id"])) == customers
    runs = read_postgres(settings, "shadow_runs", ["run_at"])
    assert runs["challenger_version"].tolist() == ["2"] and runs["passed"].tolist() == [shadow["passed"]]
