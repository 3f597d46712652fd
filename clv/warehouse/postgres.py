"""PostgreSQL as the warehouse: connection settings (the same variables as profiles.yml) and a raw-table
sink that bulk-loads staged rows with COPY, idempotently and in one transaction per file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from clv.ingest.landing import Inserted, StagedLoad, good_rows_sql, quarantined_rows_sql, stored_columns
from clv.warehouse import raw_schema

QUARANTINE_COLUMNS = "row_key, entity, reason, record"


@dataclass(frozen=True)
class PostgresSettings:
    """Where the PostgreSQL warehouse is (Redshift's settings extend these)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    CONNECT_OPTIONS = {"connect_timeout": 5}  # a class constant, not a field

    @classmethod
    def from_env(cls) -> "PostgresSettings":
        """CLV_PG_HOST/PORT/USER/PASSWORD/DATABASE, with the defaults of profiles.yml."""
        return cls(
            host=os.environ.get("CLV_PG_HOST", "127.0.0.1"),
            port=int(os.environ.get("CLV_PG_PORT", "5432")),
            user=os.environ.get("CLV_PG_USER", "postgres"),
            password=os.environ.get("CLV_PG_PASSWORD", ""),
            database=os.environ.get("CLV_PG_DATABASE", "clv"),
        )

    def connect(self, database: str | None = None):
        """A connection whose session time zone is UTC, whatever the server's or the client's (PGTZ)."""
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database, **self.CONNECT_OPTIONS)
        with conn.cursor() as cur:  # after the start-up, which applies PGTZ
            cur.execute("set timezone to 'UTC'")
        conn.commit()
        return conn


def ensure_raw_tables(cur) -> None:
    """The raw schema and tables, as in the DuckDB warehouse (clv/warehouse/raw_schema.py)."""
    for statement in raw_schema.create_statements("postgres") + raw_schema.add_column_statements("postgres"):
        cur.execute(statement)


class PostgresRawSink:
    """Receives rows staged in DuckDB (`incoming_keyed`) and inserts the new ones into PostgreSQL."""

    def __init__(self, duck, settings: PostgresSettings | None = None):
        self.duck = duck
        self.settings = settings or PostgresSettings.from_env()

    def customers_landed(self) -> bool:
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute("select exists (select 1 from raw.customers)")
                return bool(cur.fetchone()[0])
        finally:
            conn.close()

    def count_landed_without_line_id(self, row_keys: list[str]) -> int:
        """How many of these row keys raw.orders holds on lines without line_id."""
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute("select count(*) from raw.orders where line_id is null and row_key = any(%s)",
                            [list(row_keys)])
                return int(cur.fetchone()[0])
        finally:
            conn.close()

    def known_customers(self, customer_ids: list[str]) -> set[str]:
        """Those of these customer ids that raw.customers holds."""
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute("select distinct customer_id from raw.customers where customer_id = any(%s)",
                            [list(customer_ids)])
                return {c for (c,) in cur.fetchall()}
        finally:
            conn.close()

    def known_signups(self, customer_ids: list[str]) -> dict:
        """Signup time already landed for each of these customers (those that have one)."""
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute("select customer_id, max(signup_ts) from raw.customers where signup_ts is not null "
                            "and customer_id = any(%s) group by customer_id", [list(customer_ids)])
                return dict(cur.fetchall())
        finally:
            conn.close()

    def recent_loads(self, entity: str, limit: int) -> list[tuple[int, float | None, int | None]]:
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute(raw_schema.recent_loads_sql("postgres"), [entity, limit])
                return cur.fetchall()
        finally:
            conn.close()

    def get_watermark(self, source: str):
        conn = self.settings.connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute("select watermark from raw.source_watermarks where source = %s", [source])
                row = cur.fetchone()
                return row[0] if row else None
        finally:
            conn.close()

    def _copy(self, cur, select_sql: str, columns: str, like: str, tmp: Path) -> None:
        """COPY the rows of a DuckDB query into a PostgreSQL temp table `incoming` shaped like `like`."""
        csv_path = tmp / "incoming.csv"
        self.duck.execute(f"copy ({select_sql}) to '{csv_path}' "
                          "(format csv, header false, timestampformat '%Y-%m-%d %H:%M:%S.%f')")
        cur.execute(f"create temp table incoming (like {like}) on commit drop")
        with open(csv_path) as handle:
            cur.copy_expert(f"copy incoming ({columns}) from stdin with (format csv)", handle)

    def insert_new_rows(self, load: StagedLoad, load_id: str) -> Inserted:
        """In one PostgreSQL transaction: new good rows, new quarantined rows, the load record."""
        entity, columns = load.entity, ", ".join(stored_columns(load.entity))
        with tempfile.TemporaryDirectory() as tmp:
            conn = self.settings.connect()
            try:
                with conn, conn.cursor() as cur:  # one transaction: commit on success, rollback on error
                    ensure_raw_tables(cur)
                    self._copy(cur, good_rows_sql(load), columns, f"raw.{entity.name}", Path(tmp))
                    cur.execute(
                        f"""insert into raw.{entity.name} ({columns}, load_id, loaded_at)
                            select {columns}, %s, (now() at time zone 'utc') from incoming i
                            where not exists (select 1 from raw.{entity.name} r where r.row_key = i.row_key)""",
                        [load_id],
                    )
                    inserted = cur.rowcount
                    cur.execute("drop table incoming")
                    self._copy(cur, quarantined_rows_sql(load), QUARANTINE_COLUMNS, "raw.quarantine", Path(tmp))
                    cur.execute(
                        f"""insert into raw.quarantine select {QUARANTINE_COLUMNS}, %s, %s, (now() at time zone 'utc')
                            from incoming q where not exists (select 1 from raw.quarantine r
                            where r.entity = q.entity and r.row_key = q.row_key)""", [load.source, load_id])
                    quarantined = cur.rowcount
                    raw_schema.record_load(cur.execute, "postgres", load, load_id, inserted, quarantined)
            finally:
                conn.close()
        return Inserted(inserted, quarantined)
