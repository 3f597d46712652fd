"""Rolling back a DuckDB transaction without hiding why it failed."""

from __future__ import annotations

import duckdb


def rollback_keeping_the_error(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement. When the failure already ended the transaction (a commit that
    could not write, e.g. on a full disk), DuckDB's own "cannot rollback - no transaction is active" would
    replace the real error in the traceback and the message: it is dropped, so the caller's `raise`
    reports what failed."""
    try:
        con.execute("rollback")
    except duckdb.TransactionException:
        pass
