"""The file BI tools read on the embedded engine: a copy of the score tables beside the DuckDB warehouse,
replaced whole after each publish (written to a temporary file, then renamed over the old one).

DuckDB lets one process write a file, and a reader holding the warehouse file open stops the weekly run.
The serving copy is never opened by the run once it is in place: a reader holding it keeps reading the copy
it opened (the renamed-over file lives until it is closed) and sees the new cutoff when it reconnects.
The copy carries the column descriptions of `marts/_scores.yml` as column comments, and holds only the
tables BI reads (no staging or intermediate models beside them). PostgreSQL and Redshift need no copy:
their readers never block a writer; their score tables get the same comments with each publish
(`comment_statements`).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from clv.warehouse.score_contract import SCORES_YML

SERVING_TABLES = ("clv_scores", "clv_tier_summary", "clv_forecast")


def serving_path(warehouse: Path | str) -> Path:
    """`clv_serving.duckdb` beside `clv.duckdb` (`<stem>_serving.duckdb`)."""
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}_serving{warehouse.suffix or '.duckdb'}")


def column_descriptions() -> dict[str, dict[str, str]]:
    """table -> column -> description, and table -> "" -> the table's own, from marts/_scores.yml."""
    source = next(s for s in yaml.safe_load(SCORES_YML.read_text())["sources"] if s["name"] == "clv")
    return {t["name"]: {"": t.get("description", ""), **{c["name"]: c.get("description", "") for c in t.get("columns", [])}}
            for t in source["tables"]}


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_statements(table: str, columns, relation: str | None = None) -> list[str]:
    """`comment on` statements giving `relation` (default `table`) the descriptions of `table` in
    marts/_scores.yml, for the columns it has (DuckDB, PostgreSQL and Redshift read the same SQL); none
    for a table the contract does not describe. The history table reads the descriptions of clv_scores."""
    described = column_descriptions()
    notes = {**described.get("clv_scores", {}), **described.get(table, {})} if table == "clv_scores_history" \
        else described.get(table, {})
    relation = relation or table
    statements = [f"comment on table {relation} is {_quoted(notes[''])}"] if notes.get("") else []
    return statements + [f'comment on column {relation}."{column}" is {_quoted(notes[column])}'
                         for column in columns if column and notes.get(column)]


def refresh_serving_copy(con, warehouse: Path | str) -> Path:
    """Write the score tables of the open warehouse connection `con` into a new serving file and put it in
    place of the old one in one rename; returns its path."""
    target = serving_path(warehouse)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    present = {row[0] for row in con.execute("select table_name from information_schema.tables "
                                             "where table_schema = current_schema()").fetchall()}
    con.execute(f"attach {_quoted(str(partial))} as serving_copy")
    try:
        for table in SERVING_TABLES:
            if table not in present:
                continue
            con.execute(f"create table serving_copy.{table} as select * from {table}")
            columns = [row[0] for row in con.execute(f"describe {table}").fetchall()]
            for statement in comment_statements(table, columns, f"serving_copy.{table}"):
                con.execute(statement)
    except Exception:
        con.execute("detach serving_copy")
        partial.unlink(missing_ok=True)
        raise
    con.execute("checkpoint serving_copy")  # everything in the file itself, no write-ahead log beside it
    con.execute("detach serving_copy")
    Path(f"{partial}.wal").unlink(missing_ok=True)
    os.replace(partial, target)
    return target
