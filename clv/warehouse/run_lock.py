"""One run at a time per warehouse: an exclusive lock held for the whole of a flow that writes it.

- DuckDB: an `flock` on `<warehouse file>.run-lock` (released by the OS when the process dies, even on
  kill -9); the file names the holder.
- PostgreSQL: a session advisory lock on a connection held open for the run (released when the
  connection closes); the holder is the connection's `application_name`.
- Redshift has no advisory locks: a lease row in `raw.run_lock`, taken by an insert that only succeeds
  when no unexpired lease exists (Redshift's serializable isolation makes a concurrent taker fail), and
  deleted at the end; a lease left by a killed run expires after `LEASE_HOURS`.

A second run does not wait: it fails at once with one line naming the holder. Within one process the
lock is re-entrant (the CLI takes it before starting Prefect, the flow takes it again)."""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import os
import re
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LEASE_HOURS = 12
_held: dict[str, int] = {}
_guard = threading.Lock()


class WarehouseBusyError(RuntimeError):
    """Another run holds the warehouse."""


def holder_text(flow: str) -> str:
    """Who holds the lock: flow, process id, user, host and start time (UTC), most telling first (a
    PostgreSQL application_name keeps 63 characters)."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{flow} (pid {os.getpid()}) by {getpass.getuser()} on {socket.gethostname()} since {started}"


def lock_key(target: str, warehouse: str | None) -> str:
    if target == "duckdb":
        return f"duckdb:{Path(warehouse).resolve()}"
    return f"{target}:{os.environ.get('CLV_PG_DATABASE' if target == 'postgres' else 'CLV_REDSHIFT_DATABASE', '')}"


@contextmanager
def warehouse_run_lock(target: str, warehouse: str | None, flow: str):
    """Hold the warehouse's run lock for the block; WarehouseBusyError at once if another run has it."""
    key = lock_key(target, warehouse)
    with _guard:
        nested = _held.get(key, 0) > 0
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    taker = {"duckdb": _file_lock, "postgres": _advisory_lock, "redshift": _lease_lock}[target]
    with taker(target, warehouse, holder_text(flow)):
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)


@contextmanager
def _file_lock(target: str, warehouse: str, holder: str):
    path = Path(f"{Path(warehouse).resolve()}.run-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            raise WarehouseBusyError(f"warehouse {Path(warehouse).resolve()} is in use by {other}; "
                                     "wait for that run to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder + "\n")
        handle.flush()
        check_no_reader_holds(Path(warehouse))
        yield
    finally:
        handle.close()  # closing releases the flock


def check_no_reader_holds(warehouse: Path) -> None:
    """A program holding the DuckDB file open (a BI tool, a notebook: DuckDB lets a file be written by one
    process only) stops the run at once, named, instead of failing minutes later when the run writes."""
    if not warehouse.exists():
        return
    import duckdb

    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.Error as exc:  # only another process's lock is this check's business
        if not isinstance(exc, duckdb.IOException) or "lock" not in str(exc).lower():
            return
        held = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
        who = f"{held.group(1)} (pid {held.group(2)})" if held else "another program"
        from clv.warehouse.serving import serving_path

        raise WarehouseBusyError(
            f"warehouse {warehouse.resolve()} is held open by {who}, e.g. a BI tool or a notebook: close it; "
            f"BI tools read {serving_path(warehouse).name} beside it, which never blocks a run") from None


def advisory_key(database: str) -> int:
    """A stable 63-bit key per warehouse database for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(f"clv-run-lock:{database}".encode()).digest()[:8], "big") >> 1


@contextmanager
def _advisory_lock(target: str, warehouse: str | None, holder: str):
    from clv.warehouse.postgres import PostgresSettings

    settings = PostgresSettings.from_env()
    key = advisory_key(settings.database)
    conn = settings.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select set_config('application_name', %s, false)", [f"clv {holder}"[:63]])
            cur.execute("select pg_try_advisory_lock(%s)", [key])
            if not cur.fetchone()[0]:
                cur.execute("select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                            "where l.locktype = 'advisory' and l.granted "
                            "and ((l.classid::bigint << 32) | l.objid::bigint) = %s", [key])
                row = cur.fetchone()
                raise WarehouseBusyError(f"PostgreSQL warehouse {settings.database} is in use by "
                                         f"{row[0] if row and row[0] else 'another session'}; "
                                         "wait for that run to finish")
        yield
    finally:
        conn.close()  # closing the session releases the advisory lock


LEASE_TABLE_SQL = "create table if not exists raw.run_lock (holder varchar(512), taken_at timestamp, expires_at timestamp)"
TAKE_LEASE_SQL = ("insert into raw.run_lock (holder, taken_at, expires_at) "
                  "select %s, getdate(), dateadd(hour, %s, getdate()) "
                  "where not exists (select 1 from raw.run_lock where expires_at > getdate())")


@contextmanager
def _lease_lock(target: str, warehouse: str | None, holder: str, connect=None):
    from clv.warehouse import server as server_warehouse

    conn = (connect or server_warehouse.connect)(target)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("create schema if not exists raw")
            cur.execute(LEASE_TABLE_SQL)
            cur.execute("delete from raw.run_lock where expires_at <= getdate()")
            cur.execute(TAKE_LEASE_SQL, [holder, LEASE_HOURS])
            if cur.rowcount != 1:
                cur.execute("select holder from raw.run_lock order by taken_at desc limit 1")
                row = cur.fetchone()
                raise WarehouseBusyError(f"Redshift warehouse is in use by {row[0] if row else 'another run'}; "
                                         "wait for that run to finish")
        try:
            yield
        finally:
            with conn, conn.cursor() as cur:
                cur.execute("delete from raw.run_lock where holder = %s", [holder])
    finally:
        conn.close()
