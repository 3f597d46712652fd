"""PostgreSQL and Redshift as the weekly flow's warehouse: reading dbt's tables into DataFrames and
publishing `clv_scores` atomically (readers see the old table or the new one: the new rows are loaded
into `clv_scores__next`, then drop, rename and the history append happen in one transaction).

Bulk paths: PostgreSQL `COPY FROM STDIN`; Redshift `COPY FROM 's3://...'` (gzipped CSV under the
storage URL, read with the cluster's IAM role).
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io

import pandas as pd

from clv.warehouse import score_contract
from clv.warehouse.embedded import TIER_SUMMARY_TABLE, tier_summary_sql
from clv.warehouse.serving import comment_statements

SERVER_TARGETS = ("postgres", "redshift")


def connect(target: str):
    if target == "postgres":
        from clv.warehouse.postgres import PostgresSettings

        return PostgresSettings.from_env().connect()
    if target == "redshift":
        from clv.warehouse.redshift import RedshiftSettings

        return RedshiftSettings.from_env().connect()
    raise ValueError(f"unknown warehouse target {target!r}: use duckdb, postgres or redshift")


def read_relation(target: str, relation: str, where: str = "", params=None, connection=None) -> pd.DataFrame:
    """A table as a DataFrame with the dtypes the DuckDB path gives (floats, datetimes)."""
    return read_query(target, f"select * from {relation}" + (f" where {where}" if where else ""), params, connection)


def read_query(target: str, sql: str, params=None, connection=None) -> pd.DataFrame:
    """A query (with DuckDB-style `?` parameters) as a DataFrame, numbers as floats and dates as datetimes."""
    conn = connection or connect(target)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params or []))
            columns = [d[0] for d in cur.description]
            frame = pd.DataFrame(cur.fetchall(), columns=columns)
    finally:
        if connection is None:
            conn.close()
    for column in frame.columns:
        sample = frame[column].dropna()
        if sample.empty:
            continue
        first = sample.iloc[0]
        if isinstance(first, decimal.Decimal):
            frame[column] = frame[column].astype(float)
        elif isinstance(first, (dt.date, dt.datetime)):
            frame[column] = pd.to_datetime(frame[column])
    return frame


def append_rows(target: str, table: str, frame: pd.DataFrame, connection=None) -> None:
    """Insert a few rows (a monitoring record), creating the table from the frame's columns if absent and
    adding the columns it lacks (older rows get NULL), as on DuckDB."""
    types = inferred_column_types(frame, target)
    names = ", ".join(f'"{name}"' for name, _ in types)
    conn = connection or connect(target)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"create table if not exists {table} ("
                        + ", ".join(f'"{name}" {sql_type}' for name, sql_type in types) + ")")
            cur.execute("select column_name from information_schema.columns where table_name = %s "
                        "and table_schema = current_schema()", [table])
            existing = {row[0] for row in cur.fetchall()}
            for name, sql_type in types:
                if name not in existing:
                    cur.execute(f'alter table {table} add column "{name}" {sql_type}')
            for row in frame.itertuples(index=False):
                values = [None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
                          for v in row]
                cur.execute(f"insert into {table} ({names}) values ({', '.join(['%s'] * len(values))})", values)
    finally:
        if connection is None:
            conn.close()


def inferred_column_types(scores: pd.DataFrame, target: str) -> list[tuple[str, str]]:
    """Column types for a frame without a declared schema (monitoring records, replaced tables), by dtype."""
    text = "varchar(65535)" if target == "redshift" else "text"
    types = []
    for name, series in scores.items():
        values = series.dropna()
        if pd.api.types.is_bool_dtype(series) or (len(values) and values.map(lambda v: isinstance(v, bool)).all()):
            types.append((name, "boolean"))  # a gate's pass/fail, as DuckDB stores it
        elif pd.api.types.is_float_dtype(series) or pd.api.types.is_integer_dtype(series):
            types.append((name, "double precision"))
        elif pd.api.types.is_datetime64_any_dtype(series):
            types.append((name, "timestamp"))
        elif len(values) and isinstance(values.iloc[0], dt.date):
            types.append((name, "date"))
        else:
            types.append((name, text))
    return types


def swap_statements(table: str, types: list[tuple[str, str]], load_sql: str) -> list[str]:
    """Load the rows into `table__next`, then put it in the table's place (inside the caller's transaction)."""
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in types)
    return [f"drop table if exists {table}__next",
            f"create table {table}__next ({columns})",
            load_sql,
            f"drop table if exists {table}",
            f"alter table {table}__next rename to {table}"]


def _run(cur, target: str, statements: list[str], csv_text: str) -> None:
    for statement in statements:
        if statement.startswith("copy ") and target != "redshift":
            cur.copy_expert(statement, io.StringIO(csv_text))
        else:
            cur.execute(statement)


def _load_sql(target: str, table: str, csv_text: str, s3=None) -> str:
    if target == "redshift":
        return _stage_on_s3(csv_text, table, s3)
    return f"copy {table}__next from stdin with (format csv)"


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")


def replace_table(target: str, table: str, frame: pd.DataFrame, connection=None, s3=None,
                  types: list[tuple[str, str]] | None = None) -> None:
    """Replace a whole table with a frame's rows in one transaction (readers see the old or the new one);
    column types declared (`types`) or inferred from the frame."""
    csv_text = _csv(frame)
    conn = connection or connect(target)
    try:
        with conn, conn.cursor() as cur:
            types = types or inferred_column_types(frame, target)
            _run(cur, target, swap_statements(table, types, _load_sql(target, table, csv_text, s3))
                 + comment_statements(table, [name for name, _ in types]), csv_text)
    finally:
        if connection is None:
            conn.close()


def publish_statements(table: str, history: str, types: list[tuple[str, str]], load_sql: str,
                       existing_history_columns: set[str] | None) -> list[str]:
    """The transaction that swaps in the new scores and appends them to the history (a run scoring the
    same cutoff with the same model again replaces its earlier history rows instead of duplicating them)."""
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in types)
    names = ", ".join(f'"{name}"' for name, _ in types)
    statements = swap_statements(table, types, load_sql)
    if {"clv_tier", "cutoff_date"} <= {name for name, _ in types}:
        statements += [f"drop table if exists {TIER_SUMMARY_TABLE}",
                       f"create table {TIER_SUMMARY_TABLE} as {tier_summary_sql(table)}"]
    if existing_history_columns is None:
        statements.append(f"create table {history} ({columns})")
    else:
        statements += [f'alter table {history} add column "{name}" {sql_type}'
                       for name, sql_type in types if name not in existing_history_columns]
        statements.append(f"delete from {history} where exists (select 1 from {table} as new "
                          f"where new.cutoff_date = {history}.cutoff_date and new.model_name = {history}.model_name "
                          f"and new.model_version = {history}.model_version)")
    statements.append(f"insert into {history} ({names}) select {names} from {table}")
    published = [name for name, _ in types]
    statements += comment_statements(table, published) + comment_statements(history, published)
    if {"clv_tier", "cutoff_date"} <= set(published):
        statements += comment_statements(TIER_SUMMARY_TABLE, ["clv_tier", "cutoff_date", "customers",
                                                              "predicted_value", "share_of_value"])
    return statements


def publish_scores(target: str, scores: pd.DataFrame, table: str = "clv_scores",
                   history: str = "clv_scores_history", connection=None, s3=None,
                   allow_older_cutoff: bool = False) -> None:
    """Replace `table` with `scores` and append them to `history`, in one transaction; scores of a
    cutoff older than the published one are refused unless `allow_older_cutoff`."""
    from clv.warehouse.embedded import check_cutoff_not_older

    scores = score_contract.conform(scores)
    types = score_contract.column_types(target)
    csv_text = _csv(scores)
    conn = connection or connect(target)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from information_schema.columns where table_name = %s "
                        "and column_name = 'cutoff_date' and table_schema = current_schema()", [table])
            if cur.fetchone()[0]:
                cur.execute(f"select max(cutoff_date) from {table}")
                check_cutoff_not_older(cur.fetchone()[0], scores, allow_older_cutoff)
            cur.execute("select column_name from information_schema.columns where table_name = %s", [history])
            existing = {row[0] for row in cur.fetchall()} or None
            _run(cur, target, publish_statements(table, history, types, _load_sql(target, table, csv_text, s3),
                                                 existing), csv_text)
    finally:
        if connection is None:
            conn.close()


def _stage_on_s3(csv_text: str, table: str, s3=None) -> str:
    """Upload the rows as gzipped CSV under the storage URL; the Redshift COPY that loads them."""
    from clv.cloud import storage
    from clv.warehouse.redshift import RedshiftSettings

    settings = RedshiftSettings.from_env()
    uri = f"{settings.storage_url}/publish/{table}/{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}.csv.gz"
    bucket, key = storage.split_s3(uri)
    (s3 or storage.s3_client()).put_object(Bucket=bucket, Key=key, Body=gzip.compress(csv_text.encode()))
    return (f"copy {table}__next from '{uri}' iam_role '{settings.iam_role}' format as csv gzip "
            "timeformat 'auto' emptyasnull")
