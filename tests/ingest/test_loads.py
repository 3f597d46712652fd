"""Loads that must not stay: another shop's customers whose ids collide are refused (and a few corrected
signup dates are not), and `clv loads undo` removes one load in one transaction, on DuckDB and on the real
PostgreSQL server, through the CLI."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from clv.cli import main
from clv.ingest.landing import DuckDBRawSink, land_file
from clv.ingest.validation import InputValidationError
from tests.conftest import scratch_postgres_database

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def customers(ids, signup: str, shift_days=0) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [str(i) for i in ids],
                         "signup_ts": pd.Timestamp(signup) + pd.to_timedelta([shift_days * (i % 7 + 2) for i in ids],
                                                                              unit="D"),
                         "country": "UK"})


def land(con, frame, path, entity="customers"):
    frame.to_parquet(path, index=False)
    return land_file(con, entity, path)


def test_another_shops_customers_with_colliding_ids_are_refused(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    land(con, customers(range(200), "2023-01-01"), tmp_path / "ours.parquet")
    before = con.execute("select count(*) from raw.customers").fetchone()
    with pytest.raises(InputValidationError) as raised:  # ids 1..200 again, other signup dates
        land(con, customers(range(200), "2019-06-01", shift_days=30), tmp_path / "theirs.parquet")
    assert "expect_known_customers_to_keep_their_signup_date" in str(raised.value)
    assert "200 of 200 known customer ids have another signup date" in str(raised.value)
    assert con.execute("select count(*) from raw.customers").fetchone() == before


def test_a_few_corrected_signup_dates_and_new_customers_land(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    land(con, customers(range(200), "2023-01-01"), tmp_path / "ours.parquet")
    corrected = pd.concat([customers(range(10), "2022-06-01"), customers(range(10, 200), "2023-01-01"),
                           customers(range(200, 400), "2024-01-01")])
    [result] = land(con, corrected, tmp_path / "next.parquet")
    assert result.status in ("passed", "warnings") and result.rows_inserted == 210
    re_export = customers(range(200), "2023-01-01 05:00")  # the same export in another time zone
    [result] = land(con, re_export, tmp_path / "tz.parquet")
    assert result.rows_read == 200


def test_undo_removes_one_load_in_one_transaction_on_duckdb(tmp_path, capsys):
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    orders = pd.DataFrame({"customer_id": ["a", "b", None], "order_id": ["1", "2", "3"],
                           "order_ts": pd.to_datetime(["2024-03-01", "2024-03-02", "2024-03-03"]),
                           "quantity": [1.0, 2.0, 1.0], "unit_price": [5.0, 6.0, 7.0]})
    [first] = land(con, orders, tmp_path / "week1.parquet", "orders")
    [second] = land(con, orders.assign(order_id=["4", "5", "6"]), tmp_path / "week2.parquet", "orders")
    DuckDBRawSink(con)
    con.close()
    assert main(["loads", "list", "--warehouse", str(warehouse)]) == 0
    assert second.load_id in capsys.readouterr().out
    assert main(["loads", "undo", second.load_id, "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert f"load {second.load_id} (orders) undone: 2 raw.orders rows, 1 quarantined rows, 0 watermarks, " \
           "1 load records" in out
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select order_id from raw.orders order by 1").fetchall() == [("1",), ("2",)]
        assert con.execute("select count(*) from raw.quarantine").fetchone() == (1,)
        assert con.execute("select load_id from raw.loads").fetchall() == [(first.load_id,)]
    assert main(["loads", "undo", "no-such-load", "--warehouse", str(warehouse)]) == 1
    assert "clv loads: error: no load no-such-load in raw.loads" in capsys.readouterr().err


def test_undo_on_postgres(tmp_path, monkeypatch):
    from clv.ingest.loads import undo_load
    from clv.warehouse.embedded import connect_in_memory
    from clv.warehouse.postgres import PostgresRawSink

    with scratch_postgres_database() as (_, database):
        monkeypatch.setenv("CLV_PG_DATABASE", database)
        frame = customers(range(30), "2023-01-01")
        frame.to_parquet(tmp_path / "c.parquet", index=False)
        with connect_in_memory() as con:
            [result] = land_file(con, "customers", tmp_path / "c.parquet", sink=PostgresRawSink(con))
        removed = undo_load("postgres", None, result.load_id)
        assert removed == {"entity": "customers", "removed": {"raw.customers rows": 30, "quarantined rows": 0,
                                                               "watermarks": 0, "load records": 1}}
        from clv.warehouse import server as server_warehouse

        assert server_warehouse.read_query("postgres", "select count(*) as n from raw.customers")["n"].tolist() == [0]


def test_undo_stops_the_next_scoring_snapshot_carrying_over_from_snapshots_built_since(tmp_path, capsys):
    """A snapshot built after the undone load holds its rows: the next scoring snapshot must not carry
    customers over from it (int_feature_snapshot_builds); one built before the load stays a base."""
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    orders = pd.DataFrame({"customer_id": ["a"], "order_id": ["1"], "order_ts": pd.to_datetime(["2024-03-01"]),
                           "quantity": [1.0], "unit_price": [5.0]})
    [first] = land(con, orders, tmp_path / "week1.parquet", "orders")
    [second] = land(con, orders.assign(order_id=["2"]), tmp_path / "week2.parquet", "orders")
    loaded = dict(con.execute("select load_id, min(loaded_at) from raw.orders group by 1").fetchall())
    con.execute("create table int_feature_snapshot_builds (cutoff_date date, landed_through timestamp)")
    con.execute("insert into int_feature_snapshot_builds values ('2024-03-01', ?), ('2024-03-08', ?)",
                [loaded[first.load_id], loaded[second.load_id]])
    con.close()
    assert main(["loads", "undo", second.load_id, "--warehouse", str(warehouse)]) == 0
    assert "1 feature snapshots no longer carried over" in capsys.readouterr().out
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select cutoff_date from int_feature_snapshot_builds").fetchall() == [(date(2024, 3, 1),)]
