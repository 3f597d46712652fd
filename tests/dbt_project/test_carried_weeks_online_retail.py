"""Real data, snapshots carried over from carried snapshots: Online Retail landed through 2011-06-30 and
built, then three weeks, each landed and built incrementally, so that each week's scoring snapshot is
carried over from the week before, itself carried over. The last one equals what a full refresh of the
same warehouse computes: returns, zero prices, guest lines and customers who come back after months
carry no stale row through the chain."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clv import pipeline
from clv.ingest.landing import land_file
from clv.settings import RunSettings

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "bundled" / "online_retail_ii.parquet"
WEEK_ENDS = ("2011-07-01", "2011-07-08", "2011-07-15", "2011-07-22")  # the first: the backfill's end

pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason=f"{BUNDLED} is not in this checkout")


def build(warehouse: Path, full_refresh: bool = False) -> date:
    run = pipeline.Run.of(RunSettings(warehouse=str(warehouse), target="duckdb"))
    return pipeline.build(run, full_refresh=full_refresh, max_training_cutoffs=1).cutoff


def read(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


def test_three_weeks_carried_over_in_a_row_equal_a_full_refresh(tmp_path, monkeypatch):
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    warehouse = tmp_path / "clv.duckdb"
    weeks, start = [], "1900-01-01"
    for end in WEEK_ENDS:
        orders = tmp_path / f"orders-until-{end}.parquet"
        duckdb.sql(f"copy (select * from read_parquet('{BUNDLED}') where InvoiceDate >= '{start}' "
                   f"and InvoiceDate < '{end}') to '{orders}' (format parquet)")
        with duckdb.connect(str(warehouse)) as con:
            land_file(con, "orders", str(orders))
        cutoff = build(warehouse)
        [(carried_from, recomputed)] = read(warehouse, """
            select carried_from, (select count(*) from int_customers_changed_since_carried)
            from int_cutoffs where cutoff_role = 'scoring'""").itertuples(index=False)
        known = read(warehouse, f"select count(*) as n from customer_features where cutoff_date = '{cutoff}'")
        weeks.append((cutoff, None if pd.isna(carried_from) else pd.Timestamp(carried_from).date(),
                       recomputed, known["n"].iloc[0]))
        start = end
    # every week after the backfill carried the week before's snapshot over, recomputing a minority
    assert [carried for _, carried, _, _ in weeks] == [None, *(cutoff for cutoff, _, _, _ in weeks[:-1])]
    assert all(0 < recomputed < known / 2 for _, _, recomputed, known in weeks[1:])

    refreshed = tmp_path / "refreshed.duckdb"
    shutil.copy(warehouse, refreshed)
    last = weeks[-1][0]
    assert build(refreshed, full_refresh=True) == last
    sql = f"select * from customer_features where cutoff_date = '{last}' order by customer_id"
    carried, rebuilt = read(warehouse, sql), read(refreshed, sql)
    assert len(rebuilt) == weeks[-1][3] > 5_000
    pd.testing.assert_frame_equal(carried, rebuilt, check_exact=False, rtol=1e-12)
