"""One rule for the default scoring cutoff: the last date of the order lines that count now. It was computed
twice, in Python from every landed version (the snapshot calendar) and in SQL from the current ones (the
build): after the last line was deleted or corrected to another day, the calendar and the build disagreed.
Now the plan computes it from the current versions and hands it to dbt, and the SQL fallback (a dbt build
run by hand) reads the same versions."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from clv import pipeline
from clv.ingest.landing import land_file
from clv.settings import RunSettings
from clv.snapshots import order_date_bounds
from clv.warehouse.embedded import WarehouseReader

LAST = date(2025, 6, 30)  # the day of the shop's last line, which the source then deletes or corrects
BEFORE = LAST - timedelta(days=3)  # the last day of the other lines


def lines(extra: list[dict]) -> pd.DataFrame:
    """Two years of ordinary lines for 30 customers (one line a customer every 20 days), the last on BEFORE,
    and the line the source changes later (L-last, on LAST)."""
    rows = [{"customer_id": f"c{i % 30}", "order_id": f"o{i}", "line_id": f"L{i}",
             "order_ts": pd.Timestamp(BEFORE) - pd.Timedelta(days=int(i // 30 * 20 + i % 7), hours=-10),
             "product_id": "p1", "quantity": 1.0, "unit_price": 10.0 + i % 13} for i in range(1_100)]
    return pd.DataFrame(rows + extra)


def last_line(**changes) -> dict:
    return {"customer_id": "c1", "order_id": "o-last", "line_id": "L-last", "order_ts": pd.Timestamp(LAST) +
            pd.Timedelta(hours=15), "product_id": "p1", "quantity": 1.0, "unit_price": 25.0, **changes}


@pytest.mark.parametrize("change, expected", [
    ({"deleted_at": pd.Timestamp(LAST) + pd.Timedelta(days=1)}, BEFORE),  # deleted: the day before counts
    ({"order_ts": pd.Timestamp(BEFORE) - pd.Timedelta(days=10), "updated_at": pd.Timestamp(LAST) + pd.Timedelta(days=1)},
     BEFORE),  # corrected to an earlier day
    ({"unit_price": 30.0, "updated_at": pd.Timestamp(LAST) + pd.Timedelta(days=1)}, LAST),  # a new price, same day
], ids=["deleted", "moved-earlier", "repriced"])
def test_the_plan_and_the_build_score_at_the_last_day_that_still_counts(tmp_path, monkeypatch, change, expected):
    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    warehouse = tmp_path / "clv.duckdb"
    first, restated = tmp_path / "orders.parquet", tmp_path / "restated.parquet"
    lines([last_line()]).to_parquet(first, index=False)
    pd.DataFrame([last_line(**change)]).to_parquet(restated, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, "orders", str(first))
        land_file(con, "orders", str(restated))
        every_version = con.execute("select max(cast(order_ts as date)) from raw.orders").fetchone()[0]
    assert every_version == LAST  # the old Python rule's answer, whatever the change
    assert order_date_bounds(WarehouseReader("duckdb", warehouse))[1] == expected

    built = pipeline.build(pipeline.Run.of(RunSettings(warehouse=str(warehouse), target="duckdb")),
                           max_training_cutoffs=1)
    assert pd.Timestamp(built.cutoff).date() == pd.Timestamp(built.plan.scoring_cutoff).date() == expected
    with duckdb.connect(str(warehouse), read_only=True) as con:
        staging_rule = con.execute("select max(order_date) from stg_shop__orders "
                                   "where valid_to = cast('9999-12-31' as timestamp)").fetchone()[0]
        scored = con.execute("select count(*) from customer_features where cutoff_date = ?", [expected]).fetchone()[0]
    assert staging_rule == expected  # what int_cutoffs computes when dbt runs without a cutoff
    assert scored == 30
