"""The load-size warning ("row count far from recent loads") measures a load against the recent loads' rows
per day covered, not their row counts: the weekly loads that follow a first backfill of months of history
stay quiet, and a load with a fraction of the shop's usual rows per day still warns."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv.ingest.landing import DuckDBRawSink, land_staged, stage_file
from clv.ingest.validation import ROW_COUNT_EXPECTATION, row_count_bounds

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "bundled" / "online_retail_ii.parquet"


def weeks_of_orders(first_week: int, weeks: int, lines_per_week: int, seed: int = 5) -> pd.DataFrame:
    """`lines_per_week` order lines in each of `weeks` consecutive weeks, spread over every day."""
    rng = np.random.default_rng(seed + first_week)
    n = weeks * lines_per_week
    start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * first_week)
    return pd.DataFrame({
        "customer_id": [f"c{i % 700}" for i in range(n)],
        "order_id": [f"w{first_week}-o{i // 3}" for i in range(n)],
        "order_ts": start + pd.to_timedelta(rng.integers(0, weeks * 7 * 86_400, n), unit="s"),
        "product_id": [f"p{i % 40}" for i in range(n)], "quantity": rng.integers(1, 4, n).astype(float),
        "unit_price": rng.uniform(2, 40, n).round(2)})


def stage(con, frame: pd.DataFrame, path: Path, entity: str = "orders"):
    frame.to_parquet(path, index=False)
    return stage_file(con, entity, str(path))


def row_count_check(staged):
    [check] = [c for c in staged.report.checks if c.expectation == ROW_COUNT_EXPECTATION]
    return check


@pytest.fixture()
def after_a_backfill(tmp_path):
    """A warehouse holding a backfill of 30 weeks (30 x 1,400 lines) and one ordinary week after it."""
    con = duckdb.connect()
    sink = DuckDBRawSink(con)
    land_staged(con, sink, [stage(con, weeks_of_orders(0, 30, 1_400), tmp_path / "backfill.parquet")])
    return con, sink


def test_the_first_week_after_a_backfill_stays_quiet(after_a_backfill, tmp_path):
    con, sink = after_a_backfill
    week = stage(con, weeks_of_orders(30, 1, 1_400), tmp_path / "week30.parquet")
    check = row_count_check(week)
    # 30 times fewer rows than the backfill, the same rows per day: no warning
    assert (check.success, check.observed) == (True, "1400")
    assert week.days_covered == 7
    land_staged(con, sink, [week])
    assert con.execute("select days_covered from raw.loads order by loaded_at").fetchall() == [(210,), (7,)]
    check = row_count_check(stage(con, weeks_of_orders(31, 1, 1_500), tmp_path / "week31.parquet"))
    assert check.success


def test_a_week_with_a_twentieth_of_the_usual_rows_per_day_warns(after_a_backfill, tmp_path):
    con, _ = after_a_backfill
    check = row_count_check(stage(con, weeks_of_orders(30, 1, 70), tmp_path / "thin-week.parquet"))
    assert (check.success, check.severity, check.observed) == (False, "warning", "70")


def test_a_week_with_twenty_times_the_usual_rows_per_day_warns(after_a_backfill, tmp_path):
    con, _ = after_a_backfill
    check = row_count_check(stage(con, weeks_of_orders(30, 1, 28_000), tmp_path / "flooded-week.parquet"))
    assert (check.success, check.severity) == (False, "warning")


def test_loads_logged_without_days_are_measured_by_their_row_count():
    """Loads landed before days were recorded (and undated rows) keep the row-count comparison."""
    old_loads = [(1_000, 10.0, None), (1_200, 10.0, None)]
    assert row_count_bounds(old_loads, days_covered=7) == {"row_count_min": 110.0, "row_count_max": 11_000.0}
    per_day = [(70_000, 10.0, 350), (1_400, 10.0, 7)]  # 200 rows a day either way
    assert row_count_bounds(per_day, days_covered=7) == {"row_count_min": 140.0, "row_count_max": 14_000.0}
    assert row_count_bounds(per_day, days_covered=None) == {"row_count_min": 3_570.0, "row_count_max": 357_000.0}
    assert row_count_bounds([], days_covered=7) == {"row_count_min": None, "row_count_max": None}


@pytest.mark.skipif(not BUNDLED.exists(), reason=f"{BUNDLED} is not in this checkout")
def test_online_retail_weeks_after_a_backfill_stay_quiet_and_a_thin_week_warns(tmp_path):
    """Real data: six months of Online Retail landed at once, then the next weeks, order lines and the
    customers derived from them (their days: the orders'). A week with one line in twenty warns."""
    con = duckdb.connect()
    sink = DuckDBRawSink(con)

    def slice_of(start: str, end: str, name: str, every: int = 1) -> pd.DataFrame:
        path = tmp_path / f"{name}.parquet"
        duckdb.sql(f"copy (select * from read_parquet('{BUNDLED}') where InvoiceDate >= '{start}' "
                   f"and InvoiceDate < '{end}' and hash(Invoice, StockCode) % {every} = 0) to '{path}' (format parquet)")
        return stage_file(con, "orders", str(path))

    land_staged(con, sink, [slice_of("2010-12-10", "2011-06-01", "backfill")])
    for start, end in (("2011-06-01", "2011-06-08"), ("2011-06-08", "2011-06-15")):
        week = slice_of(start, end, f"week-{start}")
        for load in (week, *week.derived):
            assert row_count_check(load).success, (load.entity.name, start, row_count_check(load))
        land_staged(con, sink, [week])
    thin = slice_of("2011-06-15", "2011-06-22", "thin-week", every=20)
    assert not row_count_check(thin).success
