"""The load log, and undoing one load: its raw rows, its quarantined rows, the watermark it set and its
record in `raw.loads`, removed in one transaction (DuckDB file, PostgreSQL or Redshift). The feature
snapshots built since the load stop being a base the next scoring snapshot carries customers over from."""

from __future__ import annotations

import pandas as pd

from clv.ingest.contract import ENTITIES
from clv.warehouse.embedded import WarehouseReader
from clv.warehouse.engines import open_warehouse

# dbt's log of the feature snapshots a scoring snapshot may carry customers over from
SNAPSHOT_BUILDS = "int_feature_snapshot_builds"


def list_loads(target: str, warehouse: str | None, limit: int = 20) -> pd.DataFrame:
    """The latest loads, newest first."""
    return WarehouseReader(target, warehouse).frame(
        "select load_id, entity, source, rows_read, rows_inserted, rows_quarantined, status, loaded_at "
        f"from raw.loads order by loaded_at desc limit {int(limit)}")


def undo_statements(entity: str, placeholder: str) -> list[tuple[str, str]]:
    """(what, statement) deleting one load's traces, each taking the load id."""
    return [(f"raw.{entity} rows", f"delete from raw.{entity} where load_id = {placeholder}"),
            ("quarantined rows", f"delete from raw.quarantine where load_id = {placeholder}"),
            ("watermarks", f"delete from raw.source_watermarks where load_id = {placeholder}"),
            ("load records", f"delete from raw.loads where load_id = {placeholder}")]


def undo_load(target: str, warehouse: str | None, load_id: str) -> dict:
    """Remove one load in one transaction; returns the entity and the rows removed per table. A source
    whose watermark this load set is read from its start again next time (row keys keep what is landed).
    Snapshots built since the load keep their rows (`clv run --full-refresh` rebuilds them), but the next
    scoring snapshot is not carried over from one of them: it would carry the removed rows along."""
    with open_warehouse(target, warehouse).transaction() as statements:
        entity = _entity(statements.fetch("select entity from raw.loads where load_id = ?", [load_id]), load_id)
        removed = {}
        if statements.fetch("select count(*) from information_schema.tables where table_name = ?",
                            [SNAPSHOT_BUILDS])[0][0]:
            removed["feature snapshots no longer carried over"] = statements.execute(
                f"delete from {SNAPSHOT_BUILDS} where landed_through >= "
                f"(select min(loaded_at) from raw.{entity} where load_id = ?)", [load_id])
        removed.update({what: statements.execute(sql, [load_id]) for what, sql in undo_statements(entity, "?")})
    return {"entity": entity, "removed": removed}


def _entity(rows: list, load_id: str) -> str:
    if not rows:
        raise LookupError(f"no load {load_id} in raw.loads (`clv loads list` shows the latest loads)")
    entity = rows[0][0]
    if entity not in ENTITIES:
        raise LookupError(f"load {load_id} is of an unknown entity {entity!r}")
    return entity
