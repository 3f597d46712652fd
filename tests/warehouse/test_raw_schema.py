"""The raw schema comes from one spec (clv/warehouse/raw_schema.py): DuckDB and the real PostgreSQL
server end up with the same tables and columns in the same order; Redshift's DDL is Redshift SQL; an
older warehouse gains the columns added since, once."""

from __future__ import annotations

import duckdb
import pytest

from clv.ingest.landing import ensure_raw_tables as ensure_duckdb
from clv.warehouse import raw_schema
from tests.warehouse.redshift_dialect import redshift_problems


def duckdb_columns(con) -> dict[str, list[str]]:
    rows = con.execute("select table_name, column_name from information_schema.columns where table_schema = 'raw' "
                       "order by table_name, ordinal_position").fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def spec() -> dict[str, list[str]]:
    return {table: [c.name for c in columns] for table, columns in raw_schema.raw_tables().items()}


@pytest.mark.fast
def test_duckdb_raw_tables_are_the_spec_and_a_second_call_changes_nothing():
    con = duckdb.connect()
    ensure_duckdb(con)
    assert duckdb_columns(con) == spec()
    ensure_duckdb(con)
    assert duckdb_columns(con) == spec()


@pytest.mark.fast
def test_an_older_warehouse_gains_the_added_columns():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.orders (row_key VARCHAR, customer_id VARCHAR, order_id VARCHAR, "
                "order_ts TIMESTAMP, product_id VARCHAR, quantity DOUBLE, unit_price DOUBLE, "
                "load_id VARCHAR, loaded_at TIMESTAMP)")
    con.execute("insert into raw.orders (row_key, customer_id) values ('k', 'A')")
    ensure_duckdb(con)
    columns = duckdb_columns(con)["orders"]
    assert {"line_id", "updated_at", "deleted_at"} <= set(columns)
    assert con.execute("select customer_id, line_id from raw.orders").fetchall() == [("A", None)]  # rows kept


@pytest.mark.fast
def test_redshift_ddl_is_redshift_sql_and_adds_only_missing_columns():
    statements = raw_schema.create_statements("redshift")
    assert {s: redshift_problems(s) for s in statements if redshift_problems(s)} == {}
    assert "distkey(row_key)" in next(s for s in statements if "raw.orders " in s)
    present = {"orders": {c.name for c in raw_schema.raw_tables()["orders"]} - {"deleted_at"}, "loads": {"load_id"}}
    added = raw_schema.add_column_statements("redshift", present)
    assert "alter table raw.orders add column deleted_at timestamp" in added
    assert not any("raw.orders add column line_id" in s for s in added)  # present already
    assert not any("raw.customers" in s for s in added)  # a table not created yet gets its columns from create
    assert all(not redshift_problems(s) for s in added)
    with pytest.raises(ValueError, match="unknown warehouse dialect"):
        raw_schema.create_statements("sqlite")


@pytest.mark.postgres
def test_postgres_raw_tables_match_duckdb(postgres_database):
    from clv.warehouse.postgres import ensure_raw_tables as ensure_postgres

    conn = postgres_database.connect()
    try:
        with conn, conn.cursor() as cur:
            ensure_postgres(cur)
            ensure_postgres(cur)  # idempotent
            cur.execute("select table_name, column_name from information_schema.columns where table_schema = 'raw' "
                        "order by table_name, ordinal_position")
            tables: dict[str, list[str]] = {}
            for table, column in cur.fetchall():
                tables.setdefault(table, []).append(column)
    finally:
        conn.close()
    con = duckdb.connect()
    ensure_duckdb(con)
    assert tables == duckdb_columns(con) == spec()
