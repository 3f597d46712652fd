"""BI readers never break the weekly run: on DuckDB they read a serving copy of the score tables that each
publish replaces in one rename (a reader holding the old copy keeps it and sees the new cutoff after
reconnecting), and a program holding the warehouse file itself is named at once instead of failing the
run minutes later."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from clv import pipeline
from clv.warehouse.engines import EmbeddedWarehouse
from clv.warehouse.run_lock import WarehouseBusyError, warehouse_run_lock
from clv.warehouse.serving import serving_path

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def week(cutoff: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["a", "b", "c"], "cutoff_date": [pd.Timestamp(cutoff).date()] * 3,
                         "predicted_clv_12m": [300.0, 20.0, 0.0], "clv_tier": ["high", "medium", "low"],
                         "model_name": "m", "model_version": "1", "scored_at": pd.Timestamp(cutoff)})


def hold_open(path) -> subprocess.Popen:
    """Another process with the file open read-only, as a BI tool or a notebook holds it: it prints the
    latest cutoff it reads, waits for a line on stdin, then prints it again."""
    code = ("import duckdb, sys\n"
            f"con = duckdb.connect({str(path)!r}, read_only=True)\n"
            "latest = lambda: con.execute('select max(cutoff_date) from clv_scores').fetchone()[0]\n"
            "print(latest(), flush=True)\nsys.stdin.readline()\nprint(latest(), flush=True)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_reader_on_the_serving_copy_never_blocks_a_publish_and_sees_the_new_week_after_reconnecting(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    run = SimpleNamespace(warehouse_interface=lambda: EmbeddedWarehouse(warehouse))
    pipeline.publish(run, week("2024-03-03"))
    copy = serving_path(warehouse)
    assert copy.name == "w_serving.duckdb"
    reader = hold_open(copy)
    assert reader.stdout.readline().strip() == "2024-03-03"
    pipeline.publish(run, week("2024-03-10"))  # the reader still holds its copy open
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "2024-03-03"  # its open copy is the one it opened
    reader.wait(timeout=30)
    with duckdb.connect(str(copy), read_only=True) as con:  # reconnecting: the new week
        assert con.execute("select max(cutoff_date) from clv_scores").fetchone()[0].isoformat() == "2024-03-10"
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert tables == {"clv_scores", "clv_tier_summary"}  # only what BI reads
        [(note,)] = con.execute("select comment from duckdb_columns() where table_name = 'clv_scores' "
                                "and column_name = 'predicted_clv_p90'").fetchall()
        assert "90th percentile" in note  # the contract's descriptions travel with the columns
    assert sorted(p.name for p in tmp_path.iterdir() if "serving" in p.name) == ["w_serving.duckdb"]


def test_a_program_holding_the_warehouse_file_stops_the_run_at_once_naming_it(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).execute("create table clv_scores as select date '2024-03-03' as cutoff_date").close()
    with warehouse_run_lock("duckdb", str(warehouse), "clv run"):
        pass  # nobody holds it: the run goes on
    reader = hold_open(warehouse)
    try:
        assert reader.stdout.readline().strip() == "2024-03-03"
        with pytest.raises(WarehouseBusyError) as raised:
            with warehouse_run_lock("duckdb", str(warehouse), "clv run"):
                pass
        message = str(raised.value)
        assert f"(pid {reader.pid})" in message and "w_serving.duckdb" in message and "close it" in message
    finally:
        reader.kill()
