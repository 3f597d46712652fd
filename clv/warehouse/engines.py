"""One warehouse interface over the three engines: the embedded DuckDB file, PostgreSQL and Redshift.

Callers open a warehouse by target name (`open_warehouse`) and then read, append, stage and land raw
rows, publish scores and run a transaction without asking which engine it is: the engine is chosen here
and nowhere else.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TARGETS = ("duckdb", "postgres", "redshift")
TARGET_ENV = "CLV_DBT_TARGET"
SERVER_SETTINGS = {"postgres": "CLV_PG_*", "redshift": "CLV_REDSHIFT_*"}


def resolve_target(target: str | None = None) -> str:
    """The target given, else CLV_DBT_TARGET, else duckdb; an unknown name is an error naming the known."""
    target = target or os.environ.get(TARGET_ENV) or "duckdb"
    if target not in TARGETS:
        raise ValueError(f"unknown warehouse target {target!r}: use {', '.join(TARGETS)}")
    return target


def open_warehouse(target: str | None = None, location: str | Path | None = None) -> "Warehouse":
    """The warehouse of a target: the DuckDB file at `location` (default $CLV_HOME/warehouse/clv.duckdb),
    or the PostgreSQL / Redshift database its environment settings name."""
    target = resolve_target(target)
    if target == "duckdb":
        from clv.config import default_warehouse

        return EmbeddedWarehouse(Path(location or default_warehouse()).resolve())
    return ServerWarehouse(target)


class Warehouse:
    """What every engine offers. `path` is the DuckDB file, None for a server."""

    target: str
    path: Path | None = None

    def describe(self) -> str:
        raise NotImplementedError

    def identity(self) -> str:
        """The warehouse as the model registry records it (clv.store_check refuses another one)."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether there is anything to read yet."""
        raise NotImplementedError

    def reader(self):
        from clv.warehouse.embedded import WarehouseReader

        return WarehouseReader(self.target, str(self.path) if self.path else None)

    def read(self, sql: str, params=None) -> pd.DataFrame:
        """A read query (DuckDB-style `?` parameters) as a DataFrame."""
        return self.reader().frame(sql, params)

    def run_lock(self, holder: str):
        """One run at a time on this warehouse (clv/warehouse/run_lock.py)."""
        from clv.warehouse.run_lock import warehouse_run_lock

        return warehouse_run_lock(self.target, str(self.path) if self.path else None, holder)

    def has(self, relation: str) -> bool:
        return self.exists() and self.reader().exists(relation)

    def staging(self):
        """A DuckDB connection to stage input files in: the file itself, or a scratch one for a server."""
        raise NotImplementedError

    def raw_sink(self, staging_connection):
        """Where landed rows go from the staging connection."""
        raise NotImplementedError

    def ensure_raw_schema(self) -> None:
        """The raw schema and its tables, with the columns added since (clv/warehouse/raw_schema.py)."""
        raise NotImplementedError

    def append(self, table: str, rows: pd.DataFrame) -> None:
        """Append a few rows (a monitoring record), creating the table, or its new columns, as needed."""
        raise NotImplementedError

    def publish_scores(self, scores: pd.DataFrame, allow_older_cutoff: bool = False) -> None:
        """Replace clv_scores (and the tier summary) in one transaction and append to the history."""
        raise NotImplementedError

    def replace_table(self, table: str, rows: pd.DataFrame, declared: bool = False) -> None:
        """Replace a whole table with these rows in one transaction (readers see the old or the new one);
        `declared`: with the column types of its contract in marts/_scores.yml (clv_forecast)."""
        raise NotImplementedError

    def refresh_serving_copy(self) -> Path | None:
        """The copy of the score tables BI tools read, where the engine needs one (clv/warehouse/serving.py)."""
        return None

    def transaction(self):
        """A context manager yielding `execute(sql, params) -> rows affected` and `fetch(sql, params) ->
        rows`, committed at the end or rolled back on an error (`?` parameters on every engine)."""
        raise NotImplementedError


class EmbeddedWarehouse(Warehouse):
    target = "duckdb"

    def __init__(self, path: Path):
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def identity(self) -> str:
        """The warehouse as the model registry records it (clv.store_check)."""
        return f"duckdb:{Path(self.path).resolve()}"

    def exists(self) -> bool:
        return self.path.exists()

    def staging(self):
        from clv.warehouse.embedded import connect

        return connect(self.path)

    def raw_sink(self, staging_connection):
        from clv.ingest.landing import DuckDBRawSink

        return DuckDBRawSink(staging_connection)

    def ensure_raw_schema(self) -> None:
        from clv.ingest.landing import ensure_raw_tables
        from clv.warehouse.embedded import connect

        with connect(self.path) as con:
            ensure_raw_tables(con)

    def append(self, table: str, rows: pd.DataFrame) -> None:
        from clv.warehouse.embedded import append_rows, connect

        with connect(self.path) as con:
            append_rows(con, table, rows)

    def publish_scores(self, scores: pd.DataFrame, allow_older_cutoff: bool = False) -> None:
        from clv.warehouse.embedded import connect, publish_scores

        with connect(self.path) as con:
            publish_scores(con, scores, allow_older_cutoff)

    def replace_table(self, table: str, rows: pd.DataFrame, declared: bool = False) -> None:
        from clv.warehouse import score_contract
        from clv.warehouse.embedded import connect

        select = "select * from new_rows"
        if declared:
            select = "select " + ", ".join(f'cast("{name}" as {sql_type}) as "{name}"'
                                           for name, sql_type in score_contract.column_types("duckdb", table)) + " from new_rows"
        with connect(self.path) as con:
            con.register("new_rows", rows)
            try:
                con.execute(f"create or replace table {table} as {select}")
            finally:
                con.unregister("new_rows")

    def refresh_serving_copy(self) -> Path:
        from clv.warehouse.embedded import connect
        from clv.warehouse.serving import refresh_serving_copy

        with connect(self.path) as con:
            return refresh_serving_copy(con, self.path)

    @contextmanager
    def transaction(self):
        from clv.warehouse.embedded import connect
        from clv.warehouse.transactions import rollback_keeping_the_error

        with connect(self.path) as con:
            con.execute("begin transaction")
            try:
                yield _Statements(lambda sql, params: con.execute(sql, params).fetchall(),
                                  lambda sql, params: con.execute(sql, params).fetchone()[0])
                con.execute("commit")
            except BaseException:
                rollback_keeping_the_error(con)
                raise


class ServerWarehouse(Warehouse):
    """PostgreSQL or Redshift, connected with the CLV_PG_* / CLV_REDSHIFT_* settings."""

    def __init__(self, target: str):
        self.target = target

    def describe(self) -> str:
        return f"{self.target} ({SERVER_SETTINGS[self.target]} settings)"

    def identity(self) -> str:
        """The warehouse as the model registry records it: the server and database."""
        if self.target == "postgres":
            from clv.warehouse.postgres import PostgresSettings as Settings
        else:
            from clv.warehouse.redshift import RedshiftSettings as Settings
        settings = Settings.from_env()
        return f"{self.target}:{settings.host}:{settings.port}/{settings.database}"

    def exists(self) -> bool:
        return True

    def staging(self):
        from clv.warehouse.embedded import connect_in_memory

        return connect_in_memory()

    def raw_sink(self, staging_connection):
        if self.target == "postgres":
            from clv.warehouse.postgres import PostgresRawSink

            return PostgresRawSink(staging_connection)
        from clv.warehouse.redshift import RedshiftRawSink

        return RedshiftRawSink(staging_connection)

    def ensure_raw_schema(self) -> None:
        if self.target == "postgres":
            from clv.warehouse.postgres import ensure_raw_tables
        else:
            from clv.warehouse.redshift import ensure_raw_tables
        with self.transaction() as statements:
            ensure_raw_tables(statements.cursor)

    def append(self, table: str, rows: pd.DataFrame) -> None:
        from clv.warehouse import server

        server.append_rows(self.target, table, rows)

    def publish_scores(self, scores: pd.DataFrame, allow_older_cutoff: bool = False) -> None:
        from clv.warehouse import server

        server.publish_scores(self.target, scores, allow_older_cutoff=allow_older_cutoff)

    def replace_table(self, table: str, rows: pd.DataFrame, declared: bool = False) -> None:
        from clv.warehouse import score_contract, server

        server.replace_table(self.target, table, rows, types=score_contract.column_types(self.target, table) if declared else None)

    @contextmanager
    def transaction(self):
        from clv.warehouse import server

        conn = server.connect(self.target)
        try:
            with conn, conn.cursor() as cur:  # commit on success, rollback on error

                def fetch(sql, params):
                    cur.execute(sql.replace("?", "%s"), params)
                    return cur.fetchall()

                def execute(sql, params):
                    cur.execute(sql.replace("?", "%s"), params)
                    return cur.rowcount

                statements = _Statements(fetch, execute)
                statements.cursor = cur
                yield statements
        finally:
            conn.close()


class _Statements:
    """The statements of one transaction: `fetch` returns rows, `execute` the rows affected."""

    cursor = None  # the server's DB-API cursor, for code written against one

    def __init__(self, fetch, execute):
        self._fetch, self._execute = fetch, execute

    def fetch(self, sql: str, params=None) -> list:
        return self._fetch(sql, list(params or []))

    def execute(self, sql: str, params=None) -> int:
        return self._execute(sql, list(params or []))
