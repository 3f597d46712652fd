"""The week's activity against the champion's week, with the season taken out: each ratio is divided by the
same two weeks' ratio a year earlier. On Online Retail (a gift wholesaler whose orders per customer in
November are 1.6-1.8x July's, as they were the year before) a champion set in July no longer alerts through
the autumn; a week whose orders double beyond last year's rise still alerts, and so does a rise the shop did
not have a year ago."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv.config import BUNDLED_ORDERS
from clv.monitoring import Week, activity_drift, last_year_weeks, week_orders
from clv.warehouse.embedded import WarehouseReader

pytestmark = pytest.mark.fast

CHAMPION_CUTOFF = date(2011, 7, 31)  # the Sunday the first model became champion in the weekly replay
WEEKS = [CHAMPION_CUTOFF + timedelta(days=7 * k) for k in range(1, 20)]  # 2011-08-07 .. 2011-12-11


@pytest.fixture(scope="module")
def retail_orders():
    """Online Retail's orders as int_orders holds them (one row per invoice of a customer: purchase value of
    its non-return lines with a positive price), read through the monitor's own reader."""
    con = duckdb.connect()
    con.execute(f"""
        create table int_orders as
        select cast(cast("Customer ID" as bigint) as varchar) as customer_id, Invoice as order_id,
               cast(min(InvoiceDate) as date) as order_date,
               sum(case when Quantity > 0 and Price > 0 then Quantity * Price else 0 end) as purchase_value
        from read_parquet('{BUNDLED_ORDERS}')
        where "Customer ID" is not null
        group by all""")
    yield WarehouseReader(connection=con)
    con.close()


def known_at(reader, day) -> int:
    return int(reader.frame("select count(*) as n from (select customer_id from int_orders where purchase_value > 0 "
                            "group by customer_id having min(order_date) <= ?) as known", [day])["n"].iloc[0])


def activity(reader, cutoff, current=None, seasonal=True):
    current = week_orders(reader, cutoff) if current is None else current
    last_year = last_year_weeks(reader, CHAMPION_CUTOFF, cutoff) if seasonal else None
    return activity_drift(week_orders(reader, CHAMPION_CUTOFF), known_at(reader, CHAMPION_CUTOFF), current,
                          known_at(reader, cutoff), last_year)


def test_the_autumn_rise_the_shop_had_last_year_too_is_not_drift(retail_orders):
    seasonal = {day: activity(retail_orders, day) for day in WEEKS}
    plain = {day: activity(retail_orders, day, seasonal=False) for day in WEEKS}
    # compared with July alone, much of the autumn alerts: up to 1.8x the orders per customer
    alerting = [day for day, a in plain.items() if a["orders_per_customer_7d"]["status"] == "alert"]
    assert len(alerting) >= 6 and max(a["orders_per_customer_7d"]["ratio"] for a in plain.values()) > 1.6
    # with the same weeks of 2010 taken out, no week alerts on either signal
    for day, signals in seasonal.items():
        for name, signal in signals.items():
            assert signal["status"] != "alert", (day, name, signal)
            assert signal["last_year_ratio"] is not None
    peak = seasonal[date(2011, 11, 20)]["orders_per_customer_7d"]
    assert peak["unadjusted_ratio"] > 1.6 and peak["last_year_ratio"] > 1.3 and peak["ratio"] < 1.3


def test_a_real_change_on_top_of_the_season_still_alerts(retail_orders):
    """Every week after the champion's, changed: each order twice (customers ordering twice as often as a
    year before), or order values up by half. Taking the season out costs little sensitivity: the doubled
    orders alert every week, the dearer orders in all but at most two (where the week's values were already
    below last year's)."""
    doubled, dearer = [], []
    for day in WEEKS:
        week = week_orders(retail_orders, day)
        doubled.append(activity(retail_orders, day, pd.concat([week, week], ignore_index=True)))
        dearer.append(activity(retail_orders, day, week.assign(purchase_value=week["purchase_value"] * 1.5)))
    assert all(a["orders_per_customer_7d"]["status"] == "alert" for a in doubled)
    assert all(a["orders_per_customer_7d"]["ratio"] > 1.6 for a in doubled)
    caught = [a["order_value_7d"]["status"] == "alert" for a in dearer]
    assert sum(caught) >= len(WEEKS) - 2, [(d, a["order_value_7d"]) for d, a in zip(WEEKS, dearer)]


def test_without_a_year_of_history_the_ratios_are_the_plain_ones(retail_orders):
    """A champion of 2010-07-31: the orders begin 2009-12-01, so no week a year before it: unadjusted."""
    assert last_year_weeks(retail_orders, date(2010, 7, 31), date(2010, 11, 21)) is None
    assert last_year_weeks(retail_orders, CHAMPION_CUTOFF, date(2011, 11, 20)) is not None


def orders(n: int, value: float, seed: int) -> pd.DataFrame:
    values = np.random.default_rng(seed).lognormal(np.log(value), 0.5, n)
    return pd.DataFrame({"customer_id": [str(i) for i in range(n)], "purchase_value": values})


@pytest.mark.parametrize("current_ly, expected", [(400, "ok"), (200, "alert")])
def test_a_rise_is_drift_only_when_last_year_did_not_rise_alike(current_ly, expected):
    """This week has twice the champion's orders; a year ago the same weeks went from 200 to `current_ly`."""
    last_year = (Week(orders(200, 50, 1), 1000), Week(orders(current_ly, 50, 2), 1000))
    signal = activity_drift(orders(300, 50, 3), 1000, orders(600, 50, 4), 1000, last_year)["orders_per_customer_7d"]
    assert signal["unadjusted_ratio"] == pytest.approx(2.0)
    assert signal["last_year_ratio"] == pytest.approx(current_ly / 200)
    assert signal["status"] == expected, signal


def test_a_year_earlier_week_without_orders_leaves_the_ratio_unadjusted():
    last_year = (Week(orders(0, 50, 1), 1000), Week(orders(100, 50, 2), 1000))
    signal = activity_drift(orders(300, 50, 3), 1000, orders(600, 50, 4), 1000, last_year)["orders_per_customer_7d"]
    assert signal["last_year_ratio"] is None and signal["ratio"] == pytest.approx(2.0) and signal["status"] == "alert"


def test_orders_of_returns_alone_are_not_purchases():
    """A week as busy as the champion's, plus as many cancellations (orders of returns only, purchase value
    0): the purchase rate and the order value are unchanged."""
    week = orders(300, 50, 4)
    cancellations = pd.DataFrame({"customer_id": [str(i) for i in range(300)], "purchase_value": 0.0})
    signals = activity_drift(orders(300, 50, 3), 1000, pd.concat([week, cancellations]), 1000)
    assert signals["orders_per_customer_7d"]["ratio"] == pytest.approx(1.0)
    assert all(signal["status"] == "ok" for signal in signals.values()), signals
