"""The embedded DuckDB warehouse: connections, reads for training and scoring, atomic score publishing."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from clv.warehouse import score_contract
from clv.warehouse.transactions import rollback_keeping_the_error

SCORES_TABLE = "clv_scores"
SCORES_HISTORY_TABLE = "clv_scores_history"
# DuckDB spills to disk beyond this (same setting as the dbt profile), so memory stays bounded.
MEMORY_LIMIT_ENV = "CLV_DUCKDB_MEMORY_LIMIT"
FALLBACK_DUCKDB_MEMORY_LIMIT = "4GB"  # where the machine's memory cannot be read
CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_memory_bytes(cgroup_files=CGROUP_MEMORY_FILES) -> int | None:
    """The memory this process may use: the machine's, or its container's limit when that is lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    for path in cgroup_files:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_memory_limit(memory_bytes: int | None = None) -> str:
    """A third of the memory at hand, in whole GB (at least 1): DuckDB's own default, 80%, leaves too little
    for the Python process holding a million customers' scores; a fixed 4GB made the as-of feature build of
    2M customers run out of memory on a 24 GB machine, which a third (8GB) builds within 10 GB."""
    memory_bytes = machine_memory_bytes() if memory_bytes is None else memory_bytes
    if not memory_bytes:
        return FALLBACK_DUCKDB_MEMORY_LIMIT
    return f"{max(1, round(memory_bytes / 3 / 2**30))}GB"


def memory_limit() -> str:
    """CLV_DUCKDB_MEMORY_LIMIT when set, else `default_memory_limit()`."""
    return os.environ.get(MEMORY_LIMIT_ENV) or default_memory_limit()


def duckdb_config() -> dict:
    return {"memory_limit": memory_limit()}


@contextmanager
def connect(path: Path | str, read_only: bool = False):
    """Open the warehouse file (creating its directory), and always close it: DuckDB allows one
    writing process per file, and dbt needs it free."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist: run `clv run` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
    try:
        yield con
    finally:
        con.close()


@contextmanager
def connect_in_memory():
    """A scratch DuckDB (for reading and staging files bound for another warehouse)."""
    con = duckdb.connect(config=duckdb_config())
    try:
        yield con
    finally:
        con.close()


def read_table(con: duckdb.DuckDBPyConnection, relation: str, where: str = "", params=None) -> pd.DataFrame:
    """A warehouse relation as a DataFrame, optionally filtered."""
    sql = f"select * from {relation}" + (f" where {where}" if where else "")
    return con.execute(sql, params or []).df()


def query(target: str, warehouse: Path | str | None, sql: str) -> list[tuple]:
    """Run one read-only query on the DuckDB file, or on PostgreSQL or Redshift (CLV_PG_* / CLV_REDSHIFT_*)."""
    if target in ("postgres", "redshift"):
        from clv.warehouse import server as server_warehouse

        conn = server_warehouse.connect(target)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def scoring_cutoff(target: str = "duckdb", warehouse: Path | str | None = None):
    """The scoring cutoff date of the last dbt build."""
    rows = query(target, warehouse, "select cutoff_date from int_cutoffs where cutoff_role = 'scoring'")
    if not rows:
        raise LookupError("int_cutoffs has no scoring cutoff: run the dbt build first")
    return rows[0][0]


TIER_SUMMARY_TABLE = "clv_tier_summary"


def tier_summary_sql(scores_relation: str) -> str:
    """Customers, predicted value and share of value per tier, for dashboards (any of the three engines)."""
    return (f"select clv_tier, max(cutoff_date) as cutoff_date, count(*) as customers, "
            f"sum(predicted_clv_12m) as predicted_value, "
            f"sum(predicted_clv_12m) / nullif(sum(sum(predicted_clv_12m)) over (), 0) as share_of_value "
            f"from {scores_relation} group by clv_tier")


class OlderCutoffError(ValueError):
    """Publishing would move `clv_scores` back to an older cutoff than the one BI tools read now."""


def check_cutoff_not_older(published, scores: pd.DataFrame, allow_older_cutoff: bool = False) -> None:
    """Refuse scores whose cutoff is older than the published one (a slow run finishing after a newer
    run), unless explicitly allowed (re-publishing an old week on purpose)."""
    if published is None or allow_older_cutoff or "cutoff_date" not in scores.columns or scores.empty:
        return
    latest = pd.to_datetime(scores["cutoff_date"], errors="coerce").max()
    if pd.isna(latest):
        return  # no readable cutoff: the table's own types refuse it
    new = latest.date()
    if new < pd.Timestamp(published).date():
        raise OlderCutoffError(f"scores for cutoff {new} not published: clv_scores already holds the newer cutoff "
                               f"{pd.Timestamp(published).date()} (pass --allow-older-cutoff to publish an older week "
                               "on purpose)")


def publish_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame, allow_older_cutoff: bool = False) -> None:
    """Replace `clv_scores` (and its per-tier summary `clv_tier_summary`) and append to `clv_scores_history`
    in one transaction: readers see the previous tables or the new ones, never a half-written one. Scoring the same cutoff with the same model
    version again replaces that run's history rows (a re-run adds no duplicates). Scores of a cutoff
    older than the published one are refused (`check_cutoff_not_older`)."""
    scores = score_contract.conform(scores)
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in score_contract.column_types("duckdb"))
    con.register("new_scores", scores)
    con.execute("begin transaction")
    try:
        exists = con.execute("select count(*) from information_schema.tables where table_name = ? "
                             "and table_schema = current_schema()", [SCORES_TABLE]).fetchone()[0]
        has_cutoff = exists and "cutoff_date" in {r[0] for r in con.execute(f"describe {SCORES_TABLE}").fetchall()}
        published = con.execute(f"select max(cutoff_date) from {SCORES_TABLE}").fetchone()[0] if has_cutoff else None
        check_cutoff_not_older(published, scores, allow_older_cutoff)
        con.execute(f"create or replace table {SCORES_TABLE} ({columns})")
        con.execute(f"insert into {SCORES_TABLE} by name select * from new_scores")  # the frame is read once:
        if {"clv_tier", "cutoff_date"} <= set(scores.columns):  # the summary and the history read the table
            con.execute(f"create or replace table {TIER_SUMMARY_TABLE} as {tier_summary_sql(SCORES_TABLE)}")
        con.execute(f"create table if not exists {SCORES_HISTORY_TABLE} ({columns})")
        _add_missing_columns(con, SCORES_HISTORY_TABLE, SCORES_TABLE)
        run_keys = ["cutoff_date", "model_name", "model_version"]
        runs = scores[run_keys].drop_duplicates() if set(run_keys) <= set(scores.columns) else scores.iloc[:0, :0]
        for cutoff, name, version in runs.itertuples(index=False):
            con.execute(f"delete from {SCORES_HISTORY_TABLE} where cutoff_date = ? and model_name = ? "
                        "and model_version = ?", [cutoff, name, version])
        con.execute(f"insert into {SCORES_HISTORY_TABLE} by name select * from {SCORES_TABLE}")
        con.execute("commit")
    except Exception:
        rollback_keeping_the_error(con)
        raise
    finally:
        con.unregister("new_scores")


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, like: str) -> None:
    """Columns a newer score table has gained are added to the history (older rows get NULL)."""
    existing = {row[0] for row in con.execute(f"describe {table}").fetchall()}
    for name, column_type, *_ in con.execute(f"describe {like}").fetchall():
        if name not in existing:
            con.execute(f'alter table {table} add column "{name}" {column_type}')


def append_rows(con: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame) -> None:
    """Append rows by column name, creating the table or adding the columns it lacks."""
    con.register("new_rows", rows)
    try:
        con.execute(f"create table if not exists {table} as select * from new_rows where false")
        _add_missing_columns(con, table, "new_rows")
        con.execute(f"insert into {table} by name select * from new_rows")
    finally:
        con.unregister("new_rows")


class WarehouseReader:
    """Read queries, as DataFrames, on the DuckDB file (or an open DuckDB connection) or on a
    PostgreSQL/Redshift warehouse."""

    def __init__(self, target: str = "duckdb", warehouse=None, connection=None):
        self.target, self.warehouse, self.connection = target, warehouse, connection

    def frame(self, sql: str, params=None) -> pd.DataFrame:
        if self.connection is not None:
            return self.connection.execute(sql, params or []).df()
        if self.target == "duckdb":
            with connect(self.warehouse, read_only=True) as con:
                return con.execute(sql, params or []).df()
        from clv.warehouse import server as server_warehouse

        return server_warehouse.read_query(self.target, sql, params)

    def exists(self, relation: str) -> bool:
        """Whether a table or view exists (schema-qualified names allowed)."""
        schema, _, name = relation.rpartition(".")
        sql = "select count(*) as n from information_schema.tables where table_name = ?"
        params = [name]
        if schema:
            sql += " and table_schema = ?"
            params.append(schema)
        return int(self.frame(sql, params).iloc[0]["n"]) > 0
