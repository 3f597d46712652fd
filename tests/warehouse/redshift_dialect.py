"""A Redshift SQL check for statements that cannot run offline: each must parse under sqlglot's redshift
dialect, re-generate for Redshift without an unsupported feature, and use none of the DuckDB-only
constructs below. A syntax check, not an execution: Redshift itself is not available here."""

from __future__ import annotations

import re

import sqlglot
from sqlglot import ErrorLevel, exp

# Constructs the redshift dialect parses leniently but Redshift does not run.
DUCKDB_ONLY = {
    exp.TryCast: "try_cast",
    exp.Struct: "struct literal",
    exp.Array: "list literal",
}
DUCKDB_ONLY_WORDS = re.compile(r"\b(hugeint|struct_pack|list_value|read_parquet|read_csv|exclude\s*\()", re.I)


def redshift_problems(sql: str) -> list[str]:
    """Why `sql` would not run on Redshift (empty when it passes the check)."""
    text = re.sub(r"%s", "'x'", sql)  # psycopg2 placeholders
    try:
        trees = sqlglot.parse(text, read="redshift", error_level=ErrorLevel.RAISE)
        for tree in trees:
            if tree is not None:
                tree.sql(dialect="redshift", unsupported_level=ErrorLevel.RAISE)
    except (sqlglot.errors.ParseError, sqlglot.errors.UnsupportedError) as exc:
        return [str(exc).splitlines()[0][:200]]
    problems = [f"DuckDB-only {name}" for tree in trees if tree is not None
                for kind, name in DUCKDB_ONLY.items() if tree.find(kind)]
    problems += [f"DuckDB-only {match.group(1)}" for match in DUCKDB_ONLY_WORDS.finditer(text)]
    return problems
