"""Redshift as the warehouse: the raw-table sink lands staged rows through Redshift's bulk path, COPY
from S3 (gzipped CSV written under the storage URL), idempotently and in one transaction per load.

Settings: CLV_REDSHIFT_HOST/PORT/USER/PASSWORD/DATABASE (as in profiles.yml), CLV_REDSHIFT_IAM_ROLE
(the role Redshift assumes to read the bucket; see deployments/iam/redshift-copy-role.json) and
CLV_STORAGE_URL (s3://bucket/prefix). Redshift has no unique indexes, `on conflict` or
`add column if not exists`, so its SQL differs from the PostgreSQL sink's where needed.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clv.cloud import storage
from clv.ingest.landing import Inserted, StagedLoad, good_rows_sql, quarantined_rows_sql, stored_columns
from clv.warehouse import raw_schema
from clv.warehouse.postgres import QUARANTINE_COLUMNS, PostgresSettings

@dataclass(frozen=True)
class RedshiftSettings(PostgresSettings):
    """The cluster (PostgreSQL's settings: Redshift speaks its protocol), the IAM role Redshift assumes to
    read S3, and the s3:// storage URL COPY reads from."""

    iam_role: str
    storage_url: str

    CONNECT_OPTIONS = {"connect_timeout": 10, "sslmode": "require"}

    @classmethod
    def from_env(cls) -> "RedshiftSettings":
        missing = [n for n in ("CLV_REDSHIFT_HOST", "CLV_REDSHIFT_IAM_ROLE", storage.STORAGE_URL_ENV)
                   if not os.environ.get(n)]
        if missing:
            raise ValueError(f"the Redshift warehouse needs {', '.join(missing)} (cluster endpoint, the IAM role "
                             "Redshift uses to read S3, and an s3:// storage URL for COPY)")
        url = os.environ[storage.STORAGE_URL_ENV]
        if not storage.is_s3(url):
            raise ValueError(f"Redshift loads through S3: {storage.STORAGE_URL_ENV} must be s3://... (got {url})")
        return cls(os.environ["CLV_REDSHIFT_HOST"], int(os.environ.get("CLV_REDSHIFT_PORT", "5439")),
                   os.environ.get("CLV_REDSHIFT_USER", "clv"), os.environ.get("CLV_REDSHIFT_PASSWORD", ""),
                   os.environ.get("CLV_REDSHIFT_DATABASE", "analytics"), os.environ["CLV_REDSHIFT_IAM_ROLE"],
                   url.rstrip("/"))


def ensure_raw_tables(cur) -> None:
    """The raw schema and tables (clv/warehouse/raw_schema.py); Redshift has no `add column if not
    exists`, so the columns each table has decide which added columns it gains."""
    for statement in raw_schema.create_statements("redshift"):
        cur.execute(statement)
    cur.execute("select table_name, column_name from information_schema.columns where table_schema = 'raw'")
    present: dict[str, set[str]] = {}
    for table, column in cur.fetchall():
        present.setdefault(table, set()).add(column)
    for statement in raw_schema.add_column_statements("redshift", present):
        cur.execute(statement)


def copy_statement(table: str, columns: str, s3_uri: str, iam_role: str) -> str:
    """Redshift COPY of a gzipped CSV object (timestamps as DuckDB writes them)."""
    return (f"copy {table} ({columns}) from '{s3_uri}' iam_role '{iam_role}' "
            "format as csv gzip timeformat 'YYYY-MM-DD HH:MI:SS' emptyasnull")


class RedshiftRawSink:
    """Receives rows staged in DuckDB and lands them in Redshift through S3 and COPY."""

    def __init__(self, duck, settings: RedshiftSettings | None = None, connect=None, s3=None):
        self.duck = duck
        self.settings = settings or RedshiftSettings.from_env()
        self._connect = connect or self.settings.connect
        self._s3 = s3

    def _query(self, sql: str, params) -> list[tuple]:
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def recent_loads(self, entity: str, limit: int) -> list[tuple]:
        return self._query(raw_schema.recent_loads_sql("redshift"), [entity, limit])

    def customers_landed(self) -> bool:
        rows = self._query("select count(*) from (select 1 from raw.customers limit 1) as one", [])
        return bool(rows and rows[0][0])

    def count_landed_without_line_id(self, row_keys: list[str]) -> int:
        """How many of these row keys raw.orders holds on lines without line_id."""
        rows = self._query("select count(*) from raw.orders where line_id is null and row_key in %s",
                           [tuple(row_keys)])
        return int(rows[0][0]) if rows else 0

    def known_customers(self, customer_ids: list[str]) -> set[str]:
        """Those of these customer ids that raw.customers holds."""
        if not customer_ids:
            return set()
        return {c for (c,) in self._query("select distinct customer_id from raw.customers where customer_id in %s",
                                          [tuple(customer_ids)])}

    def known_signups(self, customer_ids: list[str]) -> dict:
        """Signup time already landed for each of these customers (those that have one)."""
        if not customer_ids:
            return {}
        return dict(self._query("select customer_id, max(signup_ts) from raw.customers where signup_ts is not null "
                                "and customer_id in %s group by customer_id", [tuple(customer_ids)]))

    def get_watermark(self, source: str):
        rows = self._query("select watermark from raw.source_watermarks where source = %s", [source])
        return rows[0][0] if rows else None

    def _upload(self, select_sql: str, key: str, tmp: Path) -> str:
        """Write a DuckDB query as gzipped CSV under landing/ of the storage URL; returns its s3:// URI."""
        csv_path, gz_path = tmp / "rows.csv", tmp / "rows.csv.gz"
        self.duck.execute(f"copy ({select_sql}) to '{csv_path}' "
                          "(format csv, header false, timestampformat '%Y-%m-%d %H:%M:%S')")
        with open(csv_path, "rb") as raw, gzip.open(gz_path, "wb") as packed:
            shutil.copyfileobj(raw, packed)
        uri = f"{self.settings.storage_url}/landing/{key}"
        bucket, object_key = storage.split_s3(uri)
        (self._s3 or storage.s3_client()).upload_file(str(gz_path), bucket, object_key)
        return uri

    def insert_new_rows(self, load: StagedLoad, load_id: str) -> Inserted:
        """Upload good and quarantined rows to S3, then in one Redshift transaction COPY them into temp
        tables and insert the new ones, record the load and the source's watermark."""
        entity, columns = load.entity, ", ".join(stored_columns(load.entity))
        with tempfile.TemporaryDirectory() as tmp:
            rows_uri = self._upload(good_rows_sql(load), f"{entity.name}/{load_id}/rows.csv.gz", Path(tmp))
            quarantine_uri = self._upload(quarantined_rows_sql(load), f"{entity.name}/{load_id}/quarantine.csv.gz",
                                          Path(tmp))
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                ensure_raw_tables(cur)
                cur.execute(f"create temp table incoming (like raw.{entity.name})")
                cur.execute(copy_statement("incoming", columns, rows_uri, self.settings.iam_role))
                cur.execute(f"""insert into raw.{entity.name} ({columns}, load_id, loaded_at)
                                select {columns}, %s, getdate() from incoming i
                                where not exists (select 1 from raw.{entity.name} r where r.row_key = i.row_key)""",
                            [load_id])
                inserted = cur.rowcount
                cur.execute("create temp table incoming_quarantine (like raw.quarantine)")
                cur.execute(copy_statement("incoming_quarantine", QUARANTINE_COLUMNS, quarantine_uri,
                                           self.settings.iam_role))
                cur.execute(f"""insert into raw.quarantine select {QUARANTINE_COLUMNS}, %s, %s, getdate()
                                from incoming_quarantine q where not exists (select 1 from raw.quarantine r
                                where r.entity = q.entity and r.row_key = q.row_key)""", [load.source, load_id])
                quarantined = cur.rowcount
                raw_schema.record_load(cur.execute, "redshift", load, load_id, inserted, quarantined)
                cur.execute("drop table incoming")
                cur.execute("drop table incoming_quarantine")
        finally:
            conn.close()
        return Inserted(inserted, quarantined)
