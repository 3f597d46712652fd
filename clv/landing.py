"""Land input files into the warehouse's `raw` schema, checked against the input contract.

Landing is idempotent: every row gets a `row_key` (a hash of its contract columns and of its occurrence
number among identical rows of the same file), and only keys not yet in the raw table are inserted.
Each load is one transaction: it lands completely or not at all, and is recorded in `raw.loads`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from clv.adapters import Adapter, find_adapter
from clv.contract import ENTITIES, ContractError, Entity

log = logging.getLogger(__name__)

PII_KEY_ENV = "CLV_PII_HASH_KEY"
_SUFFIX_READERS = {
    ".parquet": "read_parquet({path}, union_by_name = true)",
    ".csv": "read_csv({path}, header = true, all_varchar = true, union_by_name = true)",
    ".jsonl": "read_json({path}, format = 'newline_delimited', union_by_name = true)",
    ".ndjson": "read_json({path}, format = 'newline_delimited', union_by_name = true)",
    ".json": "read_json({path}, format = 'newline_delimited', union_by_name = true)",
}


@dataclass
class LoadResult:
    entity: str
    source: str
    load_id: str
    rows_read: int
    rows_inserted: int
    adapter: str | None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_relation_sql(path: Path | str) -> str:
    """DuckDB table function that reads a parquet, CSV or JSON-lines file (globs allowed)."""
    path = str(path)
    suffix = Path(path.replace("*", "x")).suffix.lower()
    if suffix not in _SUFFIX_READERS:
        raise ContractError(
            f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(_SUFFIX_READERS)}"
        )
    return _SUFFIX_READERS[suffix].format(path=_quote(path))


def _source_columns(con: duckdb.DuckDBPyConnection, path: Path | str) -> list[str]:
    if "*" not in str(path) and not Path(path).exists():
        raise ContractError(f"{path}: file not found")
    try:
        described = con.execute(f"describe select * from {source_relation_sql(path)}").fetchall()
    except duckdb.Error as exc:
        raise ContractError(f"{path}: cannot be read as {Path(path).suffix} ({exc})") from exc
    return [row[0] for row in described]


def _column_expressions(entity: Entity, path: Path | str, columns: list[str]) -> tuple[dict[str, str], Adapter | None]:
    """SQL expression per contract column, directly or through an adapter; error on a missing column."""
    present = set(columns)
    if set(entity.required) <= present:
        return {c.name: f'"{c.name}"' if c.name in present else "null" for c in entity.columns}, None
    adapter = find_adapter(entity.name, present)
    if adapter:
        return adapter.expressions, adapter
    missing = [c for c in entity.required if c not in present]
    raise ContractError(
        f"{entity.name} file {path}: missing required column(s) {', '.join(missing)} "
        f"(rule: required by the input contract; found columns: {', '.join(columns)})"
    )


def _check_types(con, entity: Entity, path, relation: str, exprs: dict[str, str]) -> int:
    """Count rows and values that do not cast to the contract type; raise naming each bad column."""
    checks = [
        f"count(*) filter (where ({exprs[c.name]}) is not null and try_cast(({exprs[c.name]}) as {c.sql_type}) is null)"
        for c in entity.columns
    ]
    counts = con.execute(f"select count(*), {', '.join(checks)} from {relation}").fetchall()[0]
    total, bad = counts[0], counts[1:]
    if total == 0:
        raise ContractError(f"{entity.name} file {path}: no rows (rule: an input file must not be empty)")
    problems = [
        f"column {c.name}: {n} of {total} rows are not a valid {c.sql_type.lower()}"
        for c, n in zip(entity.columns, bad)
        if n
    ]
    if problems:
        raise ContractError(
            f"{entity.name} file {path}: " + "; ".join(problems) + " (rule: values must cast to the contract type)"
        )
    return total


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema, one table per entity and the load log, if absent."""
    con.execute("create schema if not exists raw")
    for entity in ENTITIES.values():
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in entity.columns)
        pii = "".join(f", {name}_hash VARCHAR" for name in entity.pii_columns)
        con.execute(
            f"create table if not exists raw.{entity.name} "
            f"(row_key VARCHAR, {cols}{pii}, load_id VARCHAR, loaded_at TIMESTAMP)"
        )
    con.execute(
        """create table if not exists raw.loads (
            load_id VARCHAR, entity VARCHAR, source VARCHAR, adapter VARCHAR,
            rows_read BIGINT, rows_inserted BIGINT, loaded_at TIMESTAMP)"""
    )


def _hmac_hex(values: pa.Array) -> pa.Array:
    key = os.environ[PII_KEY_ENV].encode()
    return pa.array(
        [
            None if v is None else hmac.new(key, v.strip().lower().encode(), hashlib.sha256).hexdigest()
            for v in values.to_pylist()
        ],
        type=pa.string(),
    )


def _pii_expressions(con, entity: Entity, columns: list[str]) -> dict[str, str]:
    """`<col>_hash` expressions: keyed HMAC-SHA256 when a key is configured, else NULL (column dropped)."""
    present = [c for c in entity.pii_columns if c in columns]
    if present and not os.environ.get(PII_KEY_ENV):
        log.warning("%s: PII columns %s dropped (set %s to keep keyed hashes)", entity.name, present, PII_KEY_ENV)
    if present and os.environ.get(PII_KEY_ENV):
        registered = con.execute(
            "select count(*) from duckdb_functions() where function_name = 'clv_hmac'").fetchall()[0][0]
        if not registered:
            con.create_function("clv_hmac", _hmac_hex, [str], str, type="arrow")
        return {c: (f'clv_hmac(cast("{c}" as varchar))' if c in present else "null") for c in entity.pii_columns}
    return {c: "null" for c in entity.pii_columns}


def _stage_keyed_rows(con, entity: Entity, relation: str, exprs: dict[str, str], pii: dict[str, str]) -> None:
    """Temp table `incoming_keyed`: the typed contract columns, PII hashes, and each row's row_key."""
    typed = ", ".join(f"try_cast(({exprs[c.name]}) as {c.sql_type}) as {c.name}" for c in entity.columns)
    hashed = "".join(f", {pii[c]} as {c}_hash" for c in entity.pii_columns)
    key_parts = ", ".join(f"coalesce(cast({c} as varchar), '\\N')" for c in entity.column_names)
    con.execute(f"create or replace temp table incoming as select {typed}{hashed} from {relation}")
    con.execute(
        f"""create or replace temp table incoming_keyed as
            select md5(concat_ws('|', {key_parts},
                       cast(row_number() over (partition by {', '.join(entity.column_names)}) as varchar))) as row_key,
                   *
            from incoming"""
    )
    con.execute("drop table incoming")


def stored_columns(entity: Entity) -> list[str]:
    """Columns of a raw table besides the load metadata: row_key, contract columns, PII hashes."""
    return ["row_key", *entity.column_names, *[f"{c}_hash" for c in entity.pii_columns]]


class DuckDBRawSink:
    """Raw tables in the DuckDB warehouse that also stages the rows (the embedded default)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        ensure_raw_tables(con)

    def insert_new_rows(self, entity: Entity, load_id: str, source: str, adapter: str | None, rows_read: int) -> int:
        """In one transaction: insert the staged rows whose key is new, record the load."""
        con, columns = self.con, ", ".join(stored_columns(entity))
        con.execute("begin transaction")
        try:
            inserted = con.execute(
                f"""insert into raw.{entity.name} ({columns}, load_id, loaded_at)
                    select {columns}, ?, current_timestamp
                    from incoming_keyed i
                    where not exists (select 1 from raw.{entity.name} r where r.row_key = i.row_key)""",
                [load_id],
            ).fetchall()[0][0]
            con.execute("insert into raw.loads values (?, ?, ?, ?, ?, ?, current_timestamp)",
                        [load_id, entity.name, source, adapter, rows_read, inserted])
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        return inserted


def _land_relation(con, sink, entity: Entity, relation: str, exprs: dict[str, str], pii: dict[str, str],
                   source: str, adapter: str | None, rows_read: int) -> LoadResult:
    _stage_keyed_rows(con, entity, relation, exprs, pii)
    load_id = str(uuid.uuid4())
    try:
        inserted = sink.insert_new_rows(entity, load_id, source, adapter, rows_read)
    finally:
        con.execute("drop table if exists incoming_keyed")
    return LoadResult(entity.name, source, load_id, rows_read, inserted, adapter)


def land_file(con: duckdb.DuckDBPyConnection, entity_name: str, path: Path | str, sink=None) -> list[LoadResult]:
    """Check one input file against the contract and land its new rows. `con` reads and stages the file;
    the rows go to `sink` (default: the raw tables of `con` itself). Returns one result per entity landed
    (an adapter may derive a customers input from an orders file)."""
    entity = ENTITIES[entity_name]
    sink = sink or DuckDBRawSink(con)
    columns = _source_columns(con, path)
    relation = source_relation_sql(path)
    exprs, adapter = _column_expressions(entity, path, columns)
    rows = _check_types(con, entity, path, relation, exprs)
    pii = _pii_expressions(con, entity, columns)
    results = [_land_relation(con, sink, entity, relation, exprs, pii, str(path), adapter and adapter.name, rows)]
    log.info("landed %s from %s: %d rows read, %d new", entity.name, path, rows, results[0].rows_inserted)
    if adapter and adapter.derived_customers_sql:
        customers = ENTITIES["customers"]
        derived = f"(with src as (select * from {relation}) {adapter.derived_customers_sql})"
        n = con.execute(f"select count(*) from {derived}").fetchall()[0][0]
        identity = {c.name: c.name for c in customers.columns}
        results.append(
            _land_relation(con, sink, customers, derived, identity, {c: "null" for c in customers.pii_columns},
                           f"{path}#customers", adapter.name, n)
        )
    return results
