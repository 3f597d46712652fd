"""Snapshots are kept, not rebuilt: a weekly build adds the new scoring cutoff, the calendar cutoff that
has just passed and the label windows that have just matured, and leaves every other snapshot as it was;
the new scoring snapshot recomputes only the customers whose inputs changed since the last one (or whose
orders or sessions crossed a window's edge) and carries the others over; `--full-refresh` rebuilds them all
and gives the same rows, also after corrections, a deletion and a late event landed between the weeks."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from clv.ingest.landing import land_file
from clv.snapshots import plan_for_warehouse
from clv.synth import SynthConfig, write_synthetic
from clv.transform import dbt_vars, run_dbt
from clv.warehouse.embedded import WarehouseReader

START, DAYS = date(2022, 1, 1), 1460
WEEK0 = START + timedelta(days=DAYS - 1)       # 2025-12-30
WEEK1 = WEEK0 + timedelta(days=7)              # 2026-01-06: the label window of 2024-12-31 has matured
MARK = 987654.25  # a value no build writes: marks rows a later build must leave alone


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return write_synthetic(SynthConfig(customers=1500, seed=5, start=START, days=DAYS + 14),
                           tmp_path_factory.mktemp("shop"))


def land_until(warehouse, shop, last_day: date, folder):
    folder.mkdir(exist_ok=True)
    for entity, column in (("customers", "signup_ts"), ("orders", "order_ts"), ("events", "event_ts")):
        path = folder / f"{entity}.parquet"
        duckdb.sql(f"copy (select * from read_parquet('{shop[entity]}') where cast({column} as date) <= '{last_day}') "
                   f"to '{path}' (format parquet)")
        with duckdb.connect(str(warehouse)) as con:
            land_file(con, entity, str(path))


def land_rows(warehouse, entity: str, rows: list[dict], path):
    pd.DataFrame(rows).to_parquet(path, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, entity, str(path))


def at(offset: int, hour: int = 12) -> pd.Timestamp:
    """A time `offset` days after WEEK0 (before it when negative)."""
    return pd.Timestamp(WEEK0 + timedelta(days=offset)) + pd.Timedelta(hours=hour)


def restated_customers(shop) -> list[str]:
    """Five customers who bought long before WEEK0 and not in its last year: left alone, the weekly build
    would carry them over; each gets one of the changes below."""
    return [r[0] for r in duckdb.sql(
        f"select customer_id from read_parquet('{shop['orders']}') group by 1 "
        f"having min(order_ts) < date '{WEEK0 - timedelta(days=500)}' "
        f"and max(order_ts) < date '{WEEK0 - timedelta(days=400)}' order by 1 limit 5").fetchall()]


def keyed_line(customer, line_id, ordered, price, **extra) -> dict:
    return {"customer_id": customer, "order_id": f"o-{line_id}", "line_id": line_id, "order_ts": ordered,
            "product_id": "p-restated", "quantity": 1.0, "unit_price": float(price), **extra}


def land_lines_to_restate(warehouse, customers, folder):
    """Before week 0's build: three lines the source identifies (line_id), so that it can correct them."""
    a, b, c, _, _ = customers
    land_rows(warehouse, "orders", [keyed_line(a, "R1", at(-200), 100.0), keyed_line(b, "R2", at(-300), 50.0),
                                    keyed_line(c, "R3", at(-100), 70.0)], folder / "keyed-lines.parquet")


def land_restatements(warehouse, customers, folder):
    """Between the weeks: an edit dated in the week, an edit dated before week 0 (landed late), a deletion in
    the week, a customer record changed in the week and an event of an old day that arrived late."""
    a, b, c, d, e = customers
    folder.mkdir(exist_ok=True)
    land_rows(warehouse, "orders", [
        keyed_line(a, "R1", at(-200), 40.0, updated_at=at(2)),
        keyed_line(b, "R2", at(-300), 20.0, updated_at=at(-10)),
        keyed_line(c, "R3", at(-100), 70.0, updated_at=at(3), deleted_at=at(3)),
    ], folder / "corrections.parquet")
    land_rows(warehouse, "customers", [{"customer_id": d, "signup_ts": at(-900), "country": "Iceland",
                                        "acquisition_channel": "email", "updated_at": at(1)}],
              folder / "customer-correction.parquet")
    land_rows(warehouse, "events", [{"customer_id": e, "session_id": "late-1", "event_ts": at(-20),
                                     "event_type": "add_to_cart", "session_duration_s": 300.0}],
              folder / "late-event.parquet")


def build(warehouse, cutoff: date, full_refresh: bool = False, command: str = "build"):
    plan = plan_for_warehouse(WarehouseReader("duckdb", warehouse), cutoff, 365)
    run_dbt([command, *(["--full-refresh"] if full_refresh else [])], warehouse=warehouse,
            variables=dbt_vars(cutoff, 365, plan.training_cutoffs, plan.label_horizons))
    return plan


def read(warehouse, sql) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


@pytest.fixture(scope="module")
def weekly_builds(shop, tmp_path_factory):
    """Week 0 built; a probe copy tampered with; corrections landed; week 1 built incrementally on both."""
    import os

    root = tmp_path_factory.mktemp("incremental")
    os.environ["CLV_HOME"] = str(root / "home")
    warehouse = root / "warehouse.duckdb"
    land_until(warehouse, shop, WEEK0, root / "week0")
    restated = restated_customers(shop)
    land_lines_to_restate(warehouse, restated, root)
    build(warehouse, WEEK0)
    week0_cutoffs = cutoffs_of(warehouse, "customer_features")
    # a probe: mark one kept snapshot's rows; a build that rebuilt them would overwrite the marks
    probe = root / "probe.duckdb"
    shutil.copy(warehouse, probe)
    with duckdb.connect(str(probe)) as con:
        con.execute("update customer_features set revenue_total = -1 where cutoff_date = '2024-06-30'")
        con.execute(f"update customer_labels set future_revenue = {MARK} where cutoff_date = '2024-06-30'")
        con.execute("update customer_features set revenue_total = -1 where cutoff_date = ?", [WEEK0])
    for target, command in ((warehouse, "build"), (probe, "run")):  # the marks would fail dbt's tests
        land_restatements(target, restated, root / f"restated-{target.stem}")
        land_until(target, shop, WEEK1, root / f"week1-{target.stem}")
        plan = build(target, WEEK1, command=command)
    return warehouse, probe, plan, root, week0_cutoffs, restated


def cutoffs_of(warehouse, table) -> set[date]:
    return set(read(warehouse, f"select distinct cutoff_date from {table}")["cutoff_date"].dt.date)


def test_a_weekly_build_keeps_built_snapshots_and_adds_only_what_is_new(weekly_builds):
    _, probe, plan, _, week0_cutoffs, _ = weekly_builds
    kept = read(probe, "select count(*) as n, min(revenue_total) as low, max(revenue_total) as high "
                       "from customer_features where cutoff_date = '2024-06-30'").iloc[0]
    assert kept["n"] > 0 and kept["low"] == kept["high"] == -1  # not rebuilt
    assert read(probe, "select min(future_revenue) as m from customer_labels "
                       "where cutoff_date = '2024-06-30'")["m"].iloc[0] == MARK
    assert read(probe, f"select min(revenue_total) as m from customer_features "
                       f"where cutoff_date = '{WEEK0}'")["m"].iloc[0] == -1  # last week's scoring snapshot kept
    # new: the calendar cutoff whose 365-day window matured this week (2024-12-31 + 365 days <= 2026-01-06),
    # with its labels, and the new scoring cutoff; nothing else
    assert cutoffs_of(probe, "customer_features") - week0_cutoffs == {date(2024, 12, 31), WEEK1}
    assert date(2024, 12, 31) in cutoffs_of(probe, "customer_labels")


def test_the_weekly_scoring_snapshot_recomputes_the_changed_customers_and_carries_the_others(weekly_builds):
    warehouse, _, _, _, _, restated = weekly_builds
    assert len(restated) == 5
    [(carried_from,)] = read(warehouse, "select carried_from from int_cutoffs where cutoff_role = 'scoring'").values
    assert pd.Timestamp(carried_from).date() == WEEK0
    changed = set(read(warehouse, "select customer_id from int_customers_changed_since_carried")["customer_id"])
    known = read(warehouse, f"select count(*) as n from customer_features where cutoff_date = '{WEEK1}'")["n"].iloc[0]
    assert set(restated) <= changed  # each correction, the deletion, the record change, the late event
    assert 0 < len(changed) < known / 2  # most customers carried over
    features = read(warehouse, f"select customer_id, cutoff_date, revenue_total, country, sessions_count_30d, "
                               f"tenure_days from customer_features where customer_id in "
                               f"({', '.join(repr(c) for c in restated)}) order by customer_id, cutoff_date")
    week0, week1 = (features[features["cutoff_date"] == pd.Timestamp(w)].set_index("customer_id")
                    for w in (WEEK0, WEEK1))
    a, b, c, d, e = restated
    assert week1.loc[a, "revenue_total"] == pytest.approx(week0.loc[a, "revenue_total"] - 60)   # 100 -> 40
    assert week1.loc[b, "revenue_total"] == pytest.approx(week0.loc[b, "revenue_total"] - 30)   # 50 -> 20 before week 0
    assert week1.loc[c, "revenue_total"] == pytest.approx(week0.loc[c, "revenue_total"] - 70)   # deleted
    assert week0.loc[d, "country"] != "Iceland" and week1.loc[d, "country"] == "Iceland"
    assert week1.loc[e, "sessions_count_30d"] == week0.loc[e, "sessions_count_30d"] + 1     # the late session
    assert (week1["tenure_days"] - week0["tenure_days"]).eq(7).all()


def test_full_refresh_gives_the_same_rows(weekly_builds):
    warehouse, _, plan, root, _, _ = weekly_builds
    refreshed = root / "refreshed.duckdb"
    shutil.copy(warehouse, refreshed)
    build(refreshed, WEEK1, full_refresh=True)
    cutoffs = ", ".join(f"'{c}'" for c in [*plan.training_cutoffs, WEEK1])
    for table, keys in (("customer_features", "cutoff_date, customer_id"),
                        ("customer_labels", "cutoff_date, customer_id, horizon_days")):
        incremental = read(warehouse, f"select * from {table} where cutoff_date in ({cutoffs}) order by {keys}")
        rebuilt = read(refreshed, f"select * from {table} order by {keys}")
        assert len(rebuilt) > 0
        pd.testing.assert_frame_equal(incremental, rebuilt, check_exact=False, rtol=1e-12)
    # a full refresh rebuilds the calendar and the scoring cutoff; last week's scoring snapshot is not on it
    assert WEEK0 not in cutoffs_of(refreshed, "customer_features")


def test_a_weeks_tests_read_the_snapshots_it_built(weekly_builds):
    """dbt's tests on customer_features check the cutoffs the build computed (kept snapshots were tested when
    they were built, and do not change): a broken row in a kept snapshot is not read again; one in the
    week's new scoring snapshot fails its test, by name."""
    from clv.transform import DbtBuildError

    warehouse, _, plan, root, _, _ = weekly_builds
    variables = dbt_vars(WEEK1, 365, plan.training_cutoffs, plan.label_horizons)
    tampered = root / "tampered.duckdb"
    shutil.copy(warehouse, tampered)
    with duckdb.connect(str(tampered)) as con:
        con.execute("update customer_features set orders_count_30d = -1 where cutoff_date = '2024-06-30'")
    run_dbt(["test", "--select", "customer_features"], warehouse=tampered, variables=variables)
    with duckdb.connect(str(tampered)) as con:
        con.execute("update customer_features set orders_count_30d = -1 where cutoff_date = ?", [WEEK1])
    with pytest.raises(DbtBuildError, match="at_least_customer_features_orders_count_30d"):
        run_dbt(["test", "--select", "customer_features"], warehouse=tampered, variables=variables)


def test_a_snapshot_built_by_other_feature_code_is_not_carried_over(weekly_builds):
    """Re-running the week carries over from the same snapshot; the same week with another feature setting
    (the feature code's fingerprint changes, as after an upgrade or an edited model) computes every
    customer."""
    warehouse, _, plan, root, _, _ = weekly_builds
    for name, cap, expected in (("rerun", 0.999, WEEK0), ("other-code", 0.99, None)):
        copy = root / f"{name}.duckdb"
        shutil.copy(warehouse, copy)
        run_dbt(["run"], warehouse=copy, variables=dbt_vars(WEEK1, 365, plan.training_cutoffs, plan.label_horizons,
                                                             order_value_cap_percentile=cap))
        [(carried_from,)] = read(copy, "select carried_from from int_cutoffs where cutoff_role = 'scoring'").values
        assert (None if pd.isna(carried_from) else pd.Timestamp(carried_from).date()) == expected, name


def test_the_row_key_check_reads_the_rows_landed_since_the_last_build(weekly_builds):
    """raw.orders.row_key is unique, checked for the keys of the rows landed since the last feature build
    (older rows were checked when they landed; with no build logged, every row is read): a new row passes,
    an old key landed again fails by name, and an old duplicate is found once no build is logged."""
    from clv.transform import DbtBuildError

    warehouse, _, plan, root, _, _ = weekly_builds
    variables = dbt_vars(WEEK1, 365, plan.training_cutoffs, plan.label_horizons)
    check = ["test", "--select", "source:shop.orders,test_name:unique_since_last_build"]
    later = "(select max(loaded_at) from raw.orders) + interval 1 hour"
    landed_again = root / "landed-again.duckdb"
    shutil.copy(warehouse, landed_again)
    with duckdb.connect(str(landed_again)) as con:
        con.execute(f"insert into raw.orders select * replace (md5(row_key) as row_key, {later} as loaded_at) "
                    "from raw.orders limit 1")
    run_dbt(check, warehouse=landed_again, variables=variables)
    with duckdb.connect(str(landed_again)) as con:
        con.execute(f"insert into raw.orders select * replace ({later} as loaded_at) from raw.orders "
                    "order by loaded_at limit 1")
    with pytest.raises(DbtBuildError, match="unique_since_last_build_shop_orders_row_key"):
        run_dbt(check, warehouse=landed_again, variables=variables)

    old_duplicate = root / "old-duplicate.duckdb"
    shutil.copy(warehouse, old_duplicate)
    with duckdb.connect(str(old_duplicate)) as con:
        con.execute("insert into raw.orders select * from raw.orders order by loaded_at limit 1")
    run_dbt(check, warehouse=old_duplicate, variables=variables)  # landed before the last build: checked then
    with duckdb.connect(str(old_duplicate)) as con:
        con.execute("drop table int_feature_snapshot_builds")
    with pytest.raises(DbtBuildError, match="unique_since_last_build_shop_orders_row_key"):
        run_dbt(check, warehouse=old_duplicate, variables=variables)


def add_feature_the_documented_way(project) -> None:
    """docs/features.md's recipe: one SQL line in the family, one YAML entry in marts/_marts.yml."""
    family = project / "models" / "intermediate" / "features" / "int_features__order_windows.sql"
    sql = family.read_text()
    sql = sql.replace("        sum(case when days_before_cutoff < 90 then purchase_revenue else 0 end) as purchase_revenue_90d,",
                      "        sum(case when days_before_cutoff < 14 then purchase_orders_count else 0 end) as orders_count_14d,\n"
                      "        sum(case when days_before_cutoff < 90 then purchase_revenue else 0 end) as purchase_revenue_90d,")
    sql = sql.replace("    windows.purchase_revenue_90d / nullif", "    windows.orders_count_14d,\n    windows.purchase_revenue_90d / nullif")
    family.write_text(sql)
    marts = project / "models" / "marts" / "_marts.yml"
    marts.write_text(marts.read_text().replace(
        "      - name: orders_count_30d\n",
        "      - name: orders_count_14d\n        data_type: bigint\n"
        "        description: \"Purchase orders in the 14 days up to the cutoff.\"\n"
        "      - name: orders_count_30d\n", 1))


def test_a_feature_added_the_documented_way_stays_equal_to_a_full_refresh_over_three_carried_weeks(
        shop, tmp_path, monkeypatch):
    """The issue a team met in its first month: a 14-day feature added as the docs say was right in the first
    build and wrong a week later (its window was missing from the customers to recompute). Now the windows
    come from the features' names; the first build after the edit stops with the full-refresh hint instead of
    a database error; every carried week then equals a full refresh."""
    from clv import transform
    from clv.config import DBT_PROJECT_DIR
    from clv.transform import DbtBuildError

    monkeypatch.setenv("CLV_HOME", str(tmp_path / "home"))
    warehouse = tmp_path / "warehouse.duckdb"
    first = WEEK0 - timedelta(days=28)
    land_until(warehouse, shop, first, tmp_path / "week-a")
    build(warehouse, first)  # the shop's warehouse before the edit
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    add_feature_the_documented_way(project)
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", project)
    week = first + timedelta(days=7)
    land_until(warehouse, shop, week, tmp_path / "week-b")
    with pytest.raises(DbtBuildError, match=r"gained column\(s\) orders_count_14d .*clv run --full-refresh"):
        build(warehouse, week)
    build(warehouse, week, full_refresh=True)
    for n in (1, 2, 3):  # three carried weeks, each compared with a full refresh of a copy
        week = first + timedelta(days=7 * (n + 1))
        land_until(warehouse, shop, week, tmp_path / f"week-{n}")
        build(warehouse, week)
        [(carried_from,)] = read(warehouse, "select carried_from from int_cutoffs where cutoff_role = 'scoring'").values
        assert pd.Timestamp(carried_from).date() == week - timedelta(days=7)  # the week was carried, not rebuilt
        refreshed = tmp_path / f"refreshed-{n}.duckdb"
        shutil.copy(warehouse, refreshed)
        build(refreshed, week, full_refresh=True)
        query = f"select * from customer_features where cutoff_date = '{week}' order by customer_id"
        carried, rebuilt = read(warehouse, query), read(refreshed, query)
        assert len(carried) > 1000 and (carried["orders_count_14d"] > 0).sum() > 10
        pd.testing.assert_frame_equal(carried, rebuilt, check_exact=False, rtol=1e-12)
