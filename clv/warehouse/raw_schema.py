"""The raw schema, written once: every raw table's columns in one spec, rendered as DDL for each engine
(DuckDB, PostgreSQL, Redshift). Landing appends to these tables; dbt's staging models read them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from clv.ingest.contract import ENTITIES

DIALECTS = ("duckdb", "postgres", "redshift")


@dataclass(frozen=True)
class RawColumn:
    name: str
    kind: str  # text, timestamp, double, bigint
    width: int = 65535  # Redshift's varchar length (the other engines' text has none)


# The contract's types (clv/ingest/contract.py) in the spec's terms.
_CONTRACT_KINDS = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "DOUBLE": "double", "BIGINT": "bigint"}
_TYPE_NAMES = {
    "duckdb": {"text": "VARCHAR", "timestamp": "TIMESTAMP", "double": "DOUBLE", "bigint": "BIGINT"},
    "postgres": {"text": "text", "timestamp": "timestamp", "double": "double precision", "bigint": "bigint"},
    "redshift": {"text": "varchar({width})", "timestamp": "timestamp", "double": "double precision",
                 "bigint": "bigint"},
}

# Optional contract columns added after warehouses already held raw tables: added where missing.
ADDED_COLUMNS = ("line_id", "updated_at", "deleted_at")
# Load-log columns added later, likewise.
LOADS_ADDED = (RawColumn("rows_quarantined", "bigint"), RawColumn("value_median", "double"),
               RawColumn("status", "text", 32), RawColumn("days_covered", "bigint"),
               RawColumn("quarantined_by_reason", "text"), RawColumn("pii_key_fingerprint", "text", 16))

# Rows that broke a row-level rule: the contract columns as JSON text (original text where a value did
# not cast), the reason, and the load they came with. Never PII: hashes are not copied here.
QUARANTINE = (RawColumn("row_key", "text", 32), RawColumn("entity", "text", 16), RawColumn("reason", "text", 256),
              RawColumn("record", "text"), RawColumn("source", "text", 1024), RawColumn("load_id", "text", 36),
              RawColumn("quarantined_at", "timestamp"))
LOADS = (RawColumn("load_id", "text", 36), RawColumn("entity", "text", 16), RawColumn("source", "text", 1024),
         RawColumn("adapter", "text", 64), RawColumn("rows_read", "bigint"), RawColumn("rows_inserted", "bigint"),
         RawColumn("loaded_at", "timestamp"))
SOURCE_WATERMARKS = (RawColumn("source", "text", 256), RawColumn("watermark", "timestamp"),
                     RawColumn("load_id", "text", 36), RawColumn("updated_at", "timestamp"))


def entity_columns(entity) -> tuple[RawColumn, ...]:
    """An input's raw table: its row key, the contract columns, PII hashes, and the load it came with."""
    return (RawColumn("row_key", "text", 32),
            *(RawColumn(c.name, _CONTRACT_KINDS[c.sql_type]) for c in entity.columns),
            *(RawColumn(f"{name}_hash", "text", 64) for name in entity.pii_columns),
            RawColumn("load_id", "text", 36), RawColumn("loaded_at", "timestamp"))


def raw_tables() -> dict[str, tuple[RawColumn, ...]]:
    """Every raw table by name (without the schema), its columns in order."""
    tables = {entity.name: entity_columns(entity) for entity in ENTITIES.values()}
    tables.update(quarantine=QUARANTINE, loads=LOADS + LOADS_ADDED, source_watermarks=SOURCE_WATERMARKS)
    return tables


def added_columns() -> list[tuple[str, RawColumn]]:
    """(table, column) pairs that older warehouses may lack."""
    pairs = [(entity.name, column) for entity in ENTITIES.values() for column in entity_columns(entity)
             if column.name in ADDED_COLUMNS]
    return pairs + [("loads", column) for column in LOADS_ADDED]


def type_name(dialect: str, column: RawColumn) -> str:
    return _TYPE_NAMES[dialect][column.kind].format(width=column.width)


def create_statements(dialect: str) -> list[str]:
    """`create schema` and `create table if not exists` for every raw table, with each engine's extras
    (PostgreSQL: unique row keys, so concurrent loads of the same rows fail instead of duplicating them;
    Redshift: distribution and sort keys)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown warehouse dialect {dialect!r}: use {', '.join(DIALECTS)}")
    statements = ["create schema if not exists raw"]
    for table, columns in raw_tables().items():
        body = ", ".join(f"{c.name} {type_name(dialect, c)}" for c in columns)
        extra = " distkey(row_key) sortkey(row_key)" if dialect == "redshift" and table in ENTITIES else ""
        statements.append(f"create table if not exists raw.{table} ({body}){extra}")
    if dialect == "postgres":
        statements += [f"create unique index if not exists {name}_row_key on raw.{name} (row_key)" for name in ENTITIES]
        statements.append("create unique index if not exists quarantine_row_key on raw.quarantine (entity, row_key)")
        statements.append("create unique index if not exists source_watermarks_source on raw.source_watermarks (source)")
    return statements


def add_column_statements(dialect: str, present: dict[str, set[str]] | None = None) -> list[str]:
    """`alter table ... add column` for the columns added since (DuckDB and PostgreSQL: `if not exists`;
    Redshift lacks it, so `present`, the columns each table has, says which are missing)."""
    statements = []
    for table, column in added_columns():
        if present is None:
            statements.append(f"alter table raw.{table} add column if not exists {column.name} "
                              f"{type_name(dialect, column)}")
        elif present.get(table) and column.name not in present[table]:
            statements.append(f"alter table raw.{table} add column {column.name} {type_name(dialect, column)}")
    return statements


_PLACEHOLDER = {"duckdb": "?", "postgres": "%s", "redshift": "%s"}
_NOW_UTC = {"duckdb": "timezone('UTC', current_timestamp)", "postgres": "(now() at time zone 'utc')",
            "redshift": "getdate()"}


def record_load(execute, dialect: str, load, load_id: str, inserted: int, quarantined: int) -> None:
    """Write a load's record in raw.loads and move its source's watermark, inside the caller's transaction
    (`execute(sql, params)` on the engine's cursor or connection)."""
    p, now = _PLACEHOLDER[dialect], _NOW_UTC[dialect]
    execute(f"insert into raw.loads (load_id, entity, source, adapter, rows_read, rows_inserted, loaded_at, "
            f"rows_quarantined, value_median, status, days_covered, quarantined_by_reason, pii_key_fingerprint) "
            f"values ({p}, {p}, {p}, {p}, {p}, {p}, {now}, {p}, {p}, {p}, {p}, {p}, {p})",
            [load_id, load.entity.name, load.source, load.adapter, load.rows_read, inserted, quarantined,
             load.value_median, load.report.status, load.days_covered,
             json.dumps(load.report.quarantined, sort_keys=True), getattr(load, "pii_key_fingerprint", None)])
    if load.watermark:
        execute(f"delete from raw.source_watermarks where source = {p}", [load.watermark[0]])
        execute(f"insert into raw.source_watermarks values ({p}, {p}, {p}, {now})", [*load.watermark, load_id])


def recent_loads_sql(dialect: str) -> str:
    """The last landed loads of an entity (parameters: entity, how many), newest first: rows read, median
    line value, days covered and rows quarantined by reason (JSON), the history a new load's row count,
    values and quarantine are measured against."""
    p = _PLACEHOLDER[dialect]
    return (f"select rows_read, value_median, days_covered, quarantined_by_reason, pii_key_fingerprint "
            f"from raw.loads where entity = {p} and rows_read > 0 "
            f"and coalesce(status, 'passed') <> 'failed' order by loaded_at desc limit {p}")
