"""PostgreSQL as the warehouse: connection settings (the same variables as profiles.yml) and a raw-table
sink that bulk-loads staged rows with COPY, idempotently and in one transaction per file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from clv.contract import ENTITIES, Entity
from clv.landing import stored_columns

_PG_TYPES = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "DOUBLE": "double precision", "BIGINT": "bigint"}


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str
    database: str

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
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database, connect_timeout=5)


def ensure_raw_tables(cur) -> None:
    """The raw schema and tables, as in the DuckDB warehouse."""
    cur.execute("create schema if not exists raw")
    for entity in ENTITIES.values():
        columns = ", ".join(
            ["row_key text"]
            + [f"{c.name} {_PG_TYPES[c.sql_type]}" for c in entity.columns]
            + [f"{c}_hash text" for c in entity.pii_columns]
        )
        cur.execute(f"create table if not exists raw.{entity.name} ({columns}, load_id text, loaded_at timestamp)")
        # concurrent loads of the same rows fail instead of duplicating them
        cur.execute(f"create unique index if not exists {entity.name}_row_key on raw.{entity.name} (row_key)")
    cur.execute(
        """create table if not exists raw.loads (load_id text, entity text, source text, adapter text,
           rows_read bigint, rows_inserted bigint, loaded_at timestamp)"""
    )


class PostgresRawSink:
    """Receives rows staged in DuckDB (`incoming_keyed`) and inserts the new ones into PostgreSQL."""

    def __init__(self, duck, settings: PostgresSettings | None = None):
        self.duck = duck
        self.settings = settings or PostgresSettings.from_env()

    def insert_new_rows(self, entity: Entity, load_id: str, source: str, adapter: str | None, rows_read: int) -> int:
        columns = ", ".join(stored_columns(entity))
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "incoming.csv"
            self.duck.execute(f"copy (select {columns} from incoming_keyed) to '{csv_path}' "
                              "(format csv, header false, timestampformat '%Y-%m-%d %H:%M:%S.%f')")
            conn = self.settings.connect()
            try:
                with conn, conn.cursor() as cur:  # one transaction: commit on success, rollback on error
                    ensure_raw_tables(cur)
                    cur.execute(f"create temp table incoming_keyed (like raw.{entity.name}) on commit drop")
                    with open(csv_path) as handle:
                        cur.copy_expert(f"copy incoming_keyed ({columns}) from stdin with (format csv)", handle)
                    cur.execute(
                        f"""insert into raw.{entity.name} ({columns}, load_id, loaded_at)
                            select {columns}, %s, localtimestamp from incoming_keyed i
                            where not exists (select 1 from raw.{entity.name} r where r.row_key = i.row_key)""",
                        [load_id],
                    )
                    inserted = cur.rowcount
                    cur.execute("insert into raw.loads values (%s, %s, %s, %s, %s, %s, localtimestamp)",
                                [load_id, entity.name, source, adapter, rows_read, inserted])
            finally:
                conn.close()
        return inserted
