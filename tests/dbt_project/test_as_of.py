"""The warehouse remembers what it knew when: a correction (customers and order lines, with and without the
source's updated_at) or a deletion landed after a run leaves every earlier snapshot as it was and shows at
later cutoffs; a session running over a cutoff counts only its events up to it.

The shop is dated relative to today, because a version without updated_at is valid from its load time (now):
T is today, the first run builds cutoffs T-60 and T-30 (labels over 14 days) and the scoring cutoff T."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from clv.ingest.landing import land_file
from clv.transform import dbt_vars, run_dbt

HORIZON = 14
# A session that starts at 23:50 on the cutoff's day and goes on past midnight: one add-to-cart before
# midnight, two after.
SESSION_DAY = 30


def day(offset: int, hour: int = 12) -> pd.Timestamp:
    return pd.Timestamp(T - timedelta(days=offset)) + pd.Timedelta(hours=hour)


def line(customer, line_id, ordered, quantity, price, **extra):
    return {"customer_id": customer, "order_id": f"o-{line_id}", "line_id": line_id, "order_ts": ordered,
            "product_id": "p1", "quantity": float(quantity), "unit_price": float(price), **extra}


def date_the_shop(today: date) -> None:
    """The shop's data and the runs' vars, dated relative to `today` (module globals the tests read)."""
    global T, ORDERS, CUSTOMERS, EVENTS, FIRST, SECOND
    T = today
    ORDERS = pd.DataFrame([
        line("c1", "L1", day(70), 1, 515.09),  # corrected later without updated_at (landed now)
        line("c1", "L2", day(40), 1, 20.0),
        line("c2", "L3", day(70), 2, 30.0),    # corrected with updated_at = T-10
        line("c3", "L4", day(50), 1, 80.0),    # in T-60's label window; deleted at T-20
        line("c3", "L5", day(100), 1, 10.0),
        line("c4", "L6", day(31), 1, 40.0),
    ])
    CUSTOMERS = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3", "c4"],
        "signup_ts": [day(120), day(110), day(100), day(90)],
        "country": ["France", "Germany", "Spain", "France"],
        "acquisition_channel": ["paid_search", "organic", "email", "social"],
    })
    EVENTS = pd.DataFrame({
        "customer_id": ["c4"] * 5,
        "session_id": ["s1"] * 5,
        "event_ts": [day(SESSION_DAY, 23) + pd.Timedelta(minutes=m) for m in (50, 55, 65, 70, 75)],
        "event_type": ["session_start", "add_to_cart", "add_to_cart", "add_to_cart", "purchase"],
        "session_duration_s": [1500.0] * 5,
    })
    FIRST = dbt_vars(cutoff=T, horizon_days=HORIZON,
                     training_cutoffs=[T - timedelta(days=60), T - timedelta(days=30)], order_value_cap_percentile=None)
    SECOND = dbt_vars(cutoff=T, horizon_days=HORIZON,
                      training_cutoffs=[T - timedelta(days=60), T - timedelta(days=30), T - timedelta(days=5)],
                      order_value_cap_percentile=None)


date_the_shop(date.today())


@pytest.fixture(autouse=True)
def dated_today():
    """A version landed without updated_at is valid from its load time: the shop is dated from the day each
    test runs, not the day the module was imported (a run crossing midnight UTC saw a day-old shop)."""
    if T != date.today():
        date_the_shop(date.today())


def land(warehouse, tmp_path, entity, frame, name):
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, entity, str(path))


def table(warehouse, name, cutoff_offsets) -> pd.DataFrame:
    days = ", ".join(f"'{T - timedelta(days=d)}'" for d in cutoff_offsets)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select * from {name} where cutoff_date in ({days}) "
                           "order by cutoff_date, customer_id").df()


def at(frame: pd.DataFrame, offset: int, customer: str) -> pd.Series:
    rows = frame[(frame["cutoff_date"] == pd.Timestamp(T - timedelta(days=offset))) & (frame["customer_id"] == customer)]
    assert len(rows) == 1, (offset, customer, rows)
    return rows.iloc[0]


@pytest.fixture
def restated(clv_home, tmp_path):
    """(features and labels of the first run, the same after the corrections landed and a rebuild)."""
    warehouse = clv_home / "warehouse.duckdb"
    land(warehouse, tmp_path, "customers", CUSTOMERS, "customers")
    land(warehouse, tmp_path, "orders", ORDERS, "orders")
    land(warehouse, tmp_path, "events", EVENTS, "events")
    run_dbt(["build"], warehouse=warehouse, variables=FIRST)
    before = (table(warehouse, "customer_features", (60, 30)), table(warehouse, "customer_labels", (60, 30)))

    land(warehouse, tmp_path, "customers", pd.DataFrame({
        "customer_id": ["c1", "c2"], "signup_ts": [day(2), day(110)], "country": ["Spain", "Austria"],
        "acquisition_channel": ["email", "organic"], "updated_at": [pd.NaT, day(10)]}), "customers-corrected")
    land(warehouse, tmp_path, "orders", pd.DataFrame([
        line("c1", "L1", day(70), 1, 65.09),                                   # no updated_at: from now on
        line("c2", "L3", day(70), 2, 5.0, updated_at=day(10)),                 # valid from T-10
        line("c3", "L4", day(50), 1, 80.0, updated_at=day(20), deleted_at=day(20)),  # deleted at T-20
    ]), "orders-corrected")
    run_dbt(["build"], warehouse=warehouse, variables=SECOND)
    after = (table(warehouse, "customer_features", (60, 30, 5, 0)), table(warehouse, "customer_labels", (60, 30)))
    return before, after


def test_corrections_landed_later_leave_earlier_snapshots_identical(restated):
    (features_before, labels_before), (features_after, labels_after) = restated
    earlier = features_after[features_after["cutoff_date"] < pd.Timestamp(T - timedelta(days=29))]
    pd.testing.assert_frame_equal(earlier.reset_index(drop=True), features_before.reset_index(drop=True))
    pd.testing.assert_frame_equal(labels_after.reset_index(drop=True), labels_before.reset_index(drop=True))
    assert at(features_before, 30, "c1")["revenue_total"] == pytest.approx(535.09)
    assert at(features_before, 30, "c1")["country"] == "France"


def test_corrections_show_at_later_cutoffs_from_their_validity_start(restated):
    _, (features, _) = restated
    # without updated_at: valid from the load time (now), so seen at the end of today only
    assert at(features, 5, "c1")["country"] == "France" and at(features, 0, "c1")["country"] == "Spain"
    assert at(features, 0, "c1")["acquisition_channel"] == "email" and at(features, 0, "c1")["days_since_signup"] == 2
    assert at(features, 5, "c1")["revenue_total"] == pytest.approx(535.09)
    assert at(features, 0, "c1")["revenue_total"] == pytest.approx(85.09)
    # with updated_at = T-10: seen at T-5 already
    assert at(features, 30, "c2")["country"] == "Germany" and at(features, 5, "c2")["country"] == "Austria"
    assert at(features, 30, "c2")["revenue_total"] == pytest.approx(60.0)
    assert at(features, 5, "c2")["revenue_total"] == pytest.approx(10.0)


def test_a_deleted_line_stops_counting_from_its_deletion(restated):
    _, (features, labels) = restated
    assert at(features, 30, "c3")["revenue_total"] == pytest.approx(90.0)  # deleted at T-20: still there
    assert at(features, 5, "c3")["revenue_total"] == pytest.approx(10.0)
    assert at(features, 5, "c3")["orders_count"] == 1
    # T-60's label window (T-60, T-46] had matured before the deletion: it keeps the line
    assert at(labels, 60, "c3")["future_revenue"] == pytest.approx(80.0)


def test_a_session_over_the_cutoff_counts_only_its_events_up_to_it(restated):
    _, (features, _) = restated
    at_cutoff = at(features, SESSION_DAY, "c4")
    assert at_cutoff["sessions_count_30d"] == 1
    assert at_cutoff["add_to_cart_count_30d"] == 1            # the two after midnight are not known yet
    assert at_cutoff["session_duration_s_mean_30d"] == 300     # 23:50 to 23:55, not the whole 1,500 s
    later = at(features, 5, "c4")
    assert later["add_to_cart_count_30d"] == 3 and later["session_duration_s_mean_30d"] == 1500


def sessions_table(warehouse) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select * exclude (last_loaded_at) from int_customer_sessions "
                           "order by customer_id, session_id").df()


def test_sessions_are_recomputed_only_when_their_events_land(clv_home, tmp_path):
    """int_customer_sessions is kept between builds: a build with no new events recomputes no session (a
    marked row stays marked); events landed later, for a running session and a new one, are folded into
    those sessions, giving the rows a full refresh gives, and the features count them."""
    import shutil

    warehouse = clv_home / "warehouse.duckdb"
    land(warehouse, tmp_path, "customers", CUSTOMERS, "customers")
    land(warehouse, tmp_path, "orders", ORDERS, "orders")
    early, late = EVENTS.iloc[:2], EVENTS.iloc[2:]  # the session's events before midnight, then after it
    land(warehouse, tmp_path, "events", early, "events-early")
    run_dbt(["build"], warehouse=warehouse, variables=FIRST)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update int_customer_sessions set add_to_cart_count = 99")  # a mark a recompute would undo
    run_dbt(["run", "--select", "int_customer_sessions"], warehouse=warehouse, variables=FIRST)
    assert sessions_table(warehouse)["add_to_cart_count"].tolist() == [99]  # nothing new landed: kept
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update int_customer_sessions set add_to_cart_count = 1")  # the mark undone

    new_session = pd.DataFrame({"customer_id": ["c1"] * 2, "session_id": ["s9"] * 2,
                                "event_ts": [day(3, 9), day(3, 10)], "event_type": ["session_start", "add_to_cart"],
                                "session_duration_s": [3600.0] * 2})
    land(warehouse, tmp_path, "events", pd.concat([late, new_session]), "events-late")
    run_dbt(["build"], warehouse=warehouse, variables=SECOND)
    incremental = sessions_table(warehouse)
    assert incremental["session_id"].tolist() == ["s9", "s1"]  # c1's new session, c4's completed one
    s1 = incremental[incremental["session_id"] == "s1"].iloc[0]
    assert s1["add_to_cart_count"] == 3 and s1["last_event_date"] == pd.Timestamp(T - timedelta(days=SESSION_DAY - 1))

    refreshed = tmp_path / "refreshed.duckdb"
    shutil.copy(warehouse, refreshed)
    run_dbt(["run", "--full-refresh", "--select", "int_customer_sessions"], warehouse=refreshed, variables=SECOND)
    pd.testing.assert_frame_equal(incremental, sessions_table(refreshed))

    features = table(warehouse, "customer_features", (5, 0))
    assert at(features, 5, "c4")["add_to_cart_count_30d"] == 3  # the whole session, its late events included
    assert at(features, 0, "c1")["sessions_count_30d"] == 1 and at(features, 0, "c1")["add_to_cart_count_30d"] == 1


def order_versions(warehouse) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select * exclude (last_loaded_at) from int_order_versions "
                           "order by order_id, valid_from").df()


def test_order_versions_are_recomputed_only_for_orders_with_landed_lines(clv_home, tmp_path):
    """int_order_versions is kept between builds: with nothing landed no order is recomputed (a marked row
    stays marked); a corrected and a deleted line landed later recompute their orders, from all of their
    lines, into the spans a full refresh gives, and leave the other orders' rows alone."""
    import shutil

    warehouse = clv_home / "warehouse.duckdb"
    land(warehouse, tmp_path, "customers", CUSTOMERS, "customers")
    land(warehouse, tmp_path, "orders", ORDERS, "orders")
    run_dbt(["build"], warehouse=warehouse, variables=FIRST)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update int_order_versions set purchase_value = -1 where order_id in ('o-L5', 'o-L6')")
    run_dbt(["run", "--select", "int_order_versions"], warehouse=warehouse, variables=FIRST)
    marked = order_versions(warehouse).set_index("order_id")["purchase_value"]
    assert marked["o-L5"] == marked["o-L6"] == -1  # nothing landed: kept

    land(warehouse, tmp_path, "orders", pd.DataFrame([
        line("c2", "L3", day(70), 2, 5.0, updated_at=day(10)),
        line("c3", "L4", day(50), 1, 80.0, updated_at=day(20), deleted_at=day(20)),
    ]), "orders-corrected")
    run_dbt(["run"], warehouse=warehouse, variables=SECOND)  # run: the marks would fail dbt's tests
    incremental = order_versions(warehouse)
    assert (incremental.set_index("order_id").loc[["o-L5", "o-L6"], "purchase_value"] == -1).all()  # untouched
    assert incremental[incremental["order_id"] == "o-L3"]["purchase_value"].tolist() == [60.0, 10.0]  # two spans
    assert len(incremental[incremental["order_id"] == "o-L4"]) == 1  # valid until its deletion

    refreshed = tmp_path / "refreshed.duckdb"
    shutil.copy(warehouse, refreshed)
    run_dbt(["run", "--full-refresh", "--select", "int_order_versions"], warehouse=refreshed, variables=SECOND)
    rebuilt = order_versions(refreshed)
    pd.testing.assert_frame_equal(incremental[~incremental["order_id"].isin(["o-L5", "o-L6"])].reset_index(drop=True),
                                  rebuilt[~rebuilt["order_id"].isin(["o-L5", "o-L6"])].reset_index(drop=True))
    assert (rebuilt.set_index("order_id").loc[["o-L5", "o-L6"], "purchase_value"] > 0).all()
