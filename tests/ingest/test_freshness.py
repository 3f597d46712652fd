"""Source freshness after each weekly landing (dbt source freshness on raw.*.loaded_at): quiet while new
rows arrive, a recorded warning past warn_after, and a stop before features past error_after."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from clv.ingest.freshness import StaleSourceError, check_source_freshness


def raw_tables(path, orders_age_days: float, events: bool = True) -> None:
    """raw.orders landed `orders_age_days` ago; raw.events exists but is empty (or is absent)."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw")
        con.execute("create or replace table raw.orders as select 'c1' as customer_id, "
                    "now()::timestamp - to_minutes(cast(? * 1440 as integer)) as loaded_at", [orders_age_days])
        con.execute("drop table if exists raw.events")
        if events:
            con.execute("create table raw.events (customer_id varchar, loaded_at timestamp)")


def by_source(checked) -> dict:
    return {c.source: c for c in checked}


def test_a_feed_that_just_landed_passes_and_an_empty_one_is_said(clv_home):
    warehouse = clv_home / "w.duckdb"
    raw_tables(warehouse, 0.01)
    checked = by_source(check_source_freshness(str(warehouse)))
    assert checked["orders"].status == "pass" and checked["orders"].age_hours < 1
    assert (checked["orders"].warn_after, checked["orders"].error_after) == ("8 days", "15 days")
    assert checked["events"].status == "no rows" and checked["events"].line() == "events: no rows landed yet"
    raw_tables(warehouse, 0.01, events=False)  # a shop without an events feed: nothing to check
    assert by_source(check_source_freshness(str(warehouse)))["events"].status == "no rows"


def test_ten_days_without_new_orders_warns_without_stopping(clv_home):
    warehouse = clv_home / "w.duckdb"
    raw_tables(warehouse, 10)
    orders = by_source(check_source_freshness(str(warehouse)))["orders"]
    assert orders.status == "warn" and orders.age_hours == pytest.approx(240, abs=0.5)
    assert "10.0 days ago; warn after 8 days, error after 15 days" in orders.line()


def test_twenty_days_without_new_orders_stops_the_run(clv_home):
    warehouse = clv_home / "w.duckdb"
    raw_tables(warehouse, 20)
    with pytest.raises(StaleSourceError, match=r"no new data: orders: error, .*20\.0 days ago.*error after 15 days"):
        check_source_freshness(str(warehouse))


def test_the_weekly_run_stops_before_features_when_orders_stopped_arriving(prefect_server, clv_home, tmp_path):
    """The same export for three weeks: its rows landed 20 days ago and nothing new since. The run stops
    after landing, names the feed, builds nothing and leaves the published scores alone."""
    from flows.weekly import weekly_clv_pipeline

    orders = tmp_path / "orders.csv"
    pd.DataFrame({"order_id": ["1", "2"], "customer_id": ["a", "b"], "order_ts": ["2024-01-02", "2024-01-03"],
                  "product_id": ["p", "q"], "quantity": [1, 2], "unit_price": [10.0, 5.0]}).to_csv(orders, index=False)
    warehouse = clv_home / "warehouse" / "clv.duckdb"
    with pytest.raises(Exception):  # two orders are too few for a pipeline; they land, then the run stops
        weekly_clv_pipeline(orders=str(orders))
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update raw.orders set loaded_at = loaded_at - interval 20 day")
        con.execute("create or replace table clv_scores as select 'a' as customer_id, 1.0 as predicted_clv_12m, "
                    "'last_period' as model_name, 'baseline' as model_version")
        con.execute("drop table if exists customer_features")
    with pytest.raises(StaleSourceError, match="no new data: orders"):
        weekly_clv_pipeline(orders=str(orders))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert con.execute("select * from clv_scores").fetchall() == [("a", 1.0, "last_period", "baseline")]
    assert "customer_features" not in tables  # dbt never ran
    reports = list((clv_home / "reports").glob("freshness-*.json"))
    assert len(reports) == 1  # the first run, whose rows were new, recorded its check
    # every dbt node is an event in Prefect too: the stale source is one, related to its run
    events = dbt_events()
    stale = [e for e in events if e["event"] == "clv.dbt.source.error"]
    assert stale and stale[-1]["resource"]["prefect.resource.id"] == "clv.dbt.source.orders"
    assert any(r["prefect.resource.role"] == "flow-run" for r in stale[-1]["related"])
    assert any(e["event"] == "clv.dbt.source.pass" for e in events)  # the first run's fresh orders


def dbt_events(timeout: float = 30) -> list[dict]:
    """The clv.dbt.source.* events the test Prefect server has received (they arrive asynchronously)."""
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            response = client._client.post("/events/filter", json={"filter": {"event": {"prefix": ["clv.dbt.source."]}},
                                                                    "limit": 50})
        response.raise_for_status()
        events = response.json()["events"]
        if any(e["event"] == "clv.dbt.source.error" for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(1)
