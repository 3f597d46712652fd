"""What protects the table marketing reads: no implausible score is published, clv_scores never goes back
to an older cutoff, and one run at a time holds a warehouse (each decision tested both ways)."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv import pipeline
from clv.warehouse import run_lock, score_contract
from clv.warehouse.embedded import OlderCutoffError, publish_scores
from clv.warehouse.run_lock import WarehouseBusyError, warehouse_run_lock
from models_ml.scoring import ImplausibleScoresError, check_publishable
from tests.conftest import scratch_postgres_database

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_plausible_scores_pass_the_check():
    spend = np.array([0.0, 120.0, 4_000.0])
    check_publishable(["a", "b", "c"], np.array([0.0, 150.0, 35_000.0]), spend, 365)  # up to 10x the largest


@pytest.mark.parametrize("bad, expected", [
    (np.inf, "1 of 3 predictions not finite, e.g. customer c: inf"),
    (np.nan, "1 of 3 predictions not finite"),
    (-5.0, "1 of 3 predictions negative, e.g. customer c: -5"),
    (1.7e14, "1 of 3 predictions above 10x the largest yearly spend observed (4,000.00; bound 40,000.00), "
             "e.g. customer c: 1.7e+14"),
])
def test_implausible_scores_stop_the_publish(bad, expected):
    with pytest.raises(ImplausibleScoresError) as raised:
        check_publishable(["a", "b", "c"], np.array([0.0, 150.0, bad]), np.array([0.0, 120.0, 4_000.0]), 365)
    assert expected in str(raised.value) and "clv_scores keeps the previous run" in str(raised.value)


def test_the_bound_is_configurable_and_scales_with_the_horizon():
    spend = np.array([1_000.0])
    check_publishable(["a"], np.array([25_000.0]), spend, 365, max_multiple=30)
    with pytest.raises(ImplausibleScoresError):
        check_publishable(["a"], np.array([25_000.0]), spend, 365)
    with pytest.raises(ImplausibleScoresError, match="bound 5,000.00"):  # half a year: half the spend
        check_publishable(["a"], np.array([6_000.0]), spend, 182.5)


def test_an_absurd_model_publishes_nothing(clv_home, monkeypatch, tmp_path):
    """The weekly scoring step with a model gone wrong: clv_scores keeps last week's rows."""
    from flows import weekly
    from models_ml import zoo

    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        publish_scores(con, scores_at("2024-03-03", 5.0))
    features = pd.DataFrame({"customer_id": ["c1", "c2"], "cutoff_date": [pd.Timestamp("2024-03-10")] * 2,
                             "revenue_sum_365d": [100.0, 250.0]})

    class Broken:
        def fit(self, X, y):
            return self

        def predict(self, frame):
            return np.array([80.0, 1.7e14])

    monkeypatch.setattr(zoo, "build_model", lambda spec, horizon: Broken())
    with pytest.raises(ImplausibleScoresError, match="customer c2"):
        weekly.score_customers.fn(pipeline.Run.of(warehouse=str(warehouse)), features,
                                  pd.Timestamp("2024-03-10").date())
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select cutoff_date, predicted_clv_12m from clv_scores").fetchall() == \
            [(pd.Timestamp("2024-03-03").date(), 5.0)]


def scores_at(cutoff: str, value: float) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["c1"], "cutoff_date": [pd.Timestamp(cutoff).date()],
                         "predicted_clv_12m": [value], "model_name": ["m"], "model_version": ["1"]})


def test_scores_never_go_back_to_an_older_cutoff_on_duckdb(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores_at("2024-03-10", 1.0))
        publish_scores(con, scores_at("2024-03-10", 2.0))  # a re-run of the same week: fine
        publish_scores(con, scores_at("2024-03-17", 3.0))  # next week: fine
        with pytest.raises(OlderCutoffError, match="cutoff 2024-03-10 not published: clv_scores already holds "
                                                   "the newer cutoff 2024-03-17"):
            publish_scores(con, scores_at("2024-03-10", 4.0))  # a slow run finishing last
        assert con.execute("select predicted_clv_12m from clv_scores").fetchall() == [(3.0,)]
        publish_scores(con, scores_at("2024-03-10", 4.0), allow_older_cutoff=True)  # on purpose
        assert con.execute("select cutoff_date from clv_scores").fetchall() == [(pd.Timestamp("2024-03-10").date(),)]


def test_a_tier_summary_is_published_with_the_scores_on_duckdb_and_postgres(tmp_path, monkeypatch):
    from clv.warehouse import server as server_warehouse
    from tests.warehouse.redshift_dialect import redshift_problems

    scores = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "cutoff_date": [pd.Timestamp("2024-03-10").date()] * 4,
                           "predicted_clv_12m": [600.0, 300.0, 80.0, 20.0], "clv_tier": ["high", "medium", "low", "low"],
                           "model_name": "m", "model_version": "1"})
    expected = [("high", 1, 600.0, 0.6), ("low", 2, 100.0, 0.1), ("medium", 1, 300.0, 0.3)]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores)
        rows = con.execute("select clv_tier, customers, predicted_value, round(share_of_value, 6) "
                           "from clv_tier_summary order by 1").fetchall()
    assert rows == expected
    with scratch_postgres_database() as (_, database):
        monkeypatch.setenv("CLV_PG_DATABASE", database)
        server_warehouse.publish_scores("postgres", scores)
        summary = server_warehouse.read_query("postgres", "select clv_tier, customers, predicted_value, "
                                                          "share_of_value from clv_tier_summary order by 1")
        described = server_warehouse.read_query(
            "postgres", "select column_name, data_type from information_schema.columns "
                        "where table_name = 'clv_scores' order by ordinal_position")
    reported = {"double precision": "double precision", "text": "text", "date": "date",
                "timestamp": "timestamp without time zone", "bigint": "bigint"}
    assert list(described.itertuples(index=False, name=None)) == [  # the contract's columns, as on DuckDB
        (name, reported[sql_type]) for name, sql_type in score_contract.column_types("postgres")]
    assert [(t, int(n), v, round(s, 6)) for t, n, v, s in summary.itertuples(index=False)] == expected
    statements = server_warehouse.publish_statements("clv_scores", "clv_scores_history",
                                                     score_contract.column_types("redshift"), "select 1", None)
    assert [s for s in statements if redshift_problems(s)] == []


def test_scores_never_go_back_to_an_older_cutoff_on_postgres(monkeypatch):
    from clv.warehouse import server as server_warehouse

    with scratch_postgres_database() as (_, database):
        monkeypatch.setenv("CLV_PG_DATABASE", database)
        server_warehouse.publish_scores("postgres", scores_at("2024-03-17", 3.0))
        with pytest.raises(OlderCutoffError):
            server_warehouse.publish_scores("postgres", scores_at("2024-03-10", 4.0))
        server_warehouse.publish_scores("postgres", scores_at("2024-03-17", 5.0))
        assert server_warehouse.read_query("postgres", "select predicted_clv_12m from clv_scores")[
            "predicted_clv_12m"].tolist() == [5.0]


HOLD = """
import sys, time
from clv.warehouse.run_lock import warehouse_run_lock
with warehouse_run_lock(sys.argv[1], sys.argv[2] or None, "weekly-clv"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold_lock_in_another_process(target: str, warehouse: str, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, target, warehouse or "", str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_on_a_duckdb_warehouse_answers_at_once_naming_the_holder(tmp_path):
    warehouse = str(tmp_path / "w.duckdb")
    holder = hold_lock_in_another_process("duckdb", warehouse, 30)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as raised:
            with warehouse_run_lock("duckdb", warehouse, "clv run"):
                pass
        assert time.monotonic() - started < 2
        assert f"in use by weekly-clv (pid {holder.pid}) by " in str(raised.value)
    finally:
        holder.kill()  # kill -9: the OS releases the lock with the process
        holder.wait()
    with warehouse_run_lock("duckdb", warehouse, "clv run"):
        with warehouse_run_lock("duckdb", warehouse, "weekly-clv"):  # re-entrant in one process
            pass


def test_a_second_run_on_a_postgres_warehouse_answers_at_once(monkeypatch):
    with scratch_postgres_database() as (_, database):
        monkeypatch.setenv("CLV_PG_DATABASE", database)
        holder = hold_lock_in_another_process("postgres", None, 30)
        try:
            with pytest.raises(WarehouseBusyError, match=f"pid {holder.pid}"):
                with warehouse_run_lock("postgres", None, "clv run"):
                    pass
        finally:
            holder.kill()
            holder.wait()
        deadline = time.monotonic() + 10  # the server notices the closed session
        while True:
            try:
                with warehouse_run_lock("postgres", None, "clv run"):
                    break
            except WarehouseBusyError:
                assert time.monotonic() < deadline
                time.sleep(0.2)


class LeaseTable:
    """Stands in for Redshift (mocked: no Redshift offline): the lease table's rows, and the answers the
    lease statements would get."""

    def __init__(self):
        self.rows, self.statements = [], []

    def connect(self, target):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def cursor(self):
        return self

    def close(self):
        pass

    def execute(self, sql, params=None):
        self.statements.append(sql)
        self.rowcount = 0
        if sql == run_lock.TAKE_LEASE_SQL and not self.rows:
            self.rows.append(params[0])
            self.rowcount = 1
        elif sql.startswith("delete from raw.run_lock where holder"):
            self.rows.remove(params[0])

    def fetchone(self):
        return (self.rows[-1],) if self.rows else None


def test_the_redshift_lease_admits_one_run_and_is_given_back():
    table = LeaseTable()
    with run_lock._lease_lock("redshift", None, "weekly-clv by a", connect=table.connect):
        with pytest.raises(WarehouseBusyError, match="in use by weekly-clv by a"):
            with run_lock._lease_lock("redshift", None, "retrain-clv by b", connect=table.connect):
                pass
    assert table.rows == []
    with run_lock._lease_lock("redshift", None, "retrain-clv by b", connect=table.connect):
        assert table.rows == ["retrain-clv by b"]


def test_a_corrupt_mlflow_store_stops_the_run_before_landing(clv_home, tmp_path):
    from clv.store_check import TrackingStoreError
    from flows.weekly import weekly_clv_pipeline

    store = clv_home / "mlflow" / "mlflow.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,order_id,order_ts,quantity,unit_price\nc1,o1,2024-03-01,1,9.5\n")
    warehouse = tmp_path / "w.duckdb"
    started = time.monotonic()
    with pytest.raises(TrackingStoreError, match="cannot be read as an MLflow store"):
        weekly_clv_pipeline.fn(orders=str(orders), warehouse=str(warehouse))
    assert time.monotonic() - started < 30 and not warehouse.exists()  # before landing, dbt and training


def test_a_missing_store_beside_served_scores_needs_new_registry(tmp_path):
    from clv.store_check import TrackingStoreError, check_tracking_store

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    check_tracking_store(uri, "clv_xgboost", None)  # a fresh install: nothing published yet
    check_tracking_store(uri, "clv_xgboost", ("last_period", "baseline"))  # nothing a registry served
    with pytest.raises(TrackingStoreError, match="does not exist, but the warehouse publishes scores of clv_xgboost "
                                                 "version 4.*--new-registry"):
        check_tracking_store(uri, "clv_xgboost", ("clv_xgboost", "4"))
    check_tracking_store(uri, "clv_xgboost", ("clv_xgboost", "4"), new_registry=True)


def test_a_store_without_the_served_model_is_refused_and_one_with_it_passes(tmp_path):
    from mlflow.tracking import MlflowClient

    from clv.store_check import TrackingStoreError, check_tracking_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("other_model")
    with pytest.raises(TrackingStoreError, match="has no registered model clv_xgboost"):
        check_tracking_store(uri, "clv_xgboost", ("clv_xgboost", "2"))
    client.create_registered_model("clv_xgboost")
    check_tracking_store(uri, "clv_xgboost", ("clv_xgboost", "2"))
