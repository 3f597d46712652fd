"""One business time zone (CLV_TIMEZONE): offsets are converted to it, naive timestamps are taken as already
in it, TIMESTAMPTZ columns land the same whatever the session's or the host's time zone, DST included."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from clv.ingest.business_time import business_timezone
from clv.ingest.landing import land_file

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def orders(timestamps: list[str]) -> pd.DataFrame:
    n = len(timestamps)
    return pd.DataFrame({"customer_id": [str(i) for i in range(n)], "order_id": [f"o{i}" for i in range(n)],
                         "order_ts": timestamps, "quantity": [1.0] * n, "unit_price": [10.0] * n})


def landed_times(path, zone: str, monkeypatch, session_zone: str | None = None) -> list[pd.Timestamp]:
    monkeypatch.setenv("CLV_TIMEZONE", zone)
    with duckdb.connect() as con:
        if session_zone:
            con.execute(f"set TimeZone = '{session_zone}'")
        land_file(con, "orders", str(path))
        return [pd.Timestamp(t) for (t,) in con.execute("select order_ts from raw.orders order by order_id").fetchall()]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_string_offsets_are_converted_and_naive_times_kept(tmp_path, monkeypatch, suffix):
    frame = orders(["2024-01-01 23:30:00+05:00", "2024-01-01 23:30:00-05:00", "2024-01-01 23:30:00",
                    "2024-01-01T23:30:00Z"])
    path = tmp_path / f"orders{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    assert landed_times(path, "UTC", monkeypatch) == [
        pd.Timestamp("2024-01-01 18:30"), pd.Timestamp("2024-01-02 04:30"),  # the -05:00 order is on Jan 2
        pd.Timestamp("2024-01-01 23:30"), pd.Timestamp("2024-01-01 23:30")]
    assert landed_times(path, "America/New_York", monkeypatch) == [
        pd.Timestamp("2024-01-01 13:30"), pd.Timestamp("2024-01-01 23:30"),
        pd.Timestamp("2024-01-01 23:30"), pd.Timestamp("2024-01-01 18:30")]


def test_zone_names_and_12_hour_times_are_read_and_an_unknown_zone_is_refused(tmp_path, monkeypatch):
    """DuckDB's timestamp cast drops a trailing zone name or AM/PM without a word: 02:01:48 America/New_York
    was stored as 02:01:48, and a re-export with the zone name added landed every line again, 5 hours early."""
    from clv.ingest.validation import InputValidationError

    path, unknown = tmp_path / "orders.csv", tmp_path / "unknown.csv"
    orders(["2026-01-07 02:01:48 America/New_York", "2026-01-07 02:01:48 EST", "2026-01-07 02:01:48 UTC",
            "2026-01-07 02:01:48 CET", "2026-01-07 02:01:48 GMT+2", "2026-01-07 02:01:48 PM",
            "2026-01-07 12:01 am", "2026-01-07 02:01:48"]).to_csv(path, index=False)
    orders(["2026-01-07 02:01:48 Mars/Olympus"]).to_csv(unknown, index=False)
    monkeypatch.setenv("CLV_TIMEZONE", "UTC")
    with duckdb.connect() as con:
        land_file(con, "orders", str(path))
        stored = dict(con.execute("select order_id, order_ts from raw.orders").fetchall())
        with pytest.raises(InputValidationError, match="order_ts is not a valid timestamp") as refused:
            land_file(con, "orders", str(unknown))
    assert "Mars/Olympus" in str(refused.value)
    assert {k: pd.Timestamp(v) for k, v in stored.items()} == {
        "o0": pd.Timestamp("2026-01-07 07:01:48"), "o1": pd.Timestamp("2026-01-07 07:01:48"),
        "o2": pd.Timestamp("2026-01-07 02:01:48"), "o3": pd.Timestamp("2026-01-07 01:01:48"),
        "o4": pd.Timestamp("2026-01-07 00:01:48"), "o5": pd.Timestamp("2026-01-07 14:01:48"),
        "o6": pd.Timestamp("2026-01-07 00:01"), "o7": pd.Timestamp("2026-01-07 02:01:48")}


def test_a_week_relanded_with_its_zone_name_adds_nothing(tmp_path, monkeypatch):
    """The same instants written naive in the business zone and then with the zone's name: no new rows."""
    monkeypatch.setenv("CLV_TIMEZONE", "America/New_York")
    naive, named = tmp_path / "naive.csv", tmp_path / "named.csv"
    orders(["2026-01-07 02:01:48", "2026-07-07 02:01:48"]).to_csv(naive, index=False)
    orders(["2026-01-07 02:01:48 America/New_York", "2026-07-07 06:01:48 UTC"]).to_csv(named, index=False)
    with duckdb.connect() as con:
        land_file(con, "orders", str(naive))
        [again] = land_file(con, "orders", str(named))
        assert again.rows_inserted == 0 and con.execute("select count(*) from raw.orders").fetchone() == (2,)


def test_timestamptz_parquet_lands_the_same_in_any_session_time_zone(tmp_path, monkeypatch):
    frame = orders(["2024-06-30 22:30:00", "2024-07-01 03:59:00"])
    frame["order_ts"] = pd.to_datetime(frame["order_ts"]).dt.tz_localize("UTC")
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path, index=False)
    expected = [pd.Timestamp("2024-06-30 22:30"), pd.Timestamp("2024-07-01 03:59")]
    assert landed_times(path, "UTC", monkeypatch) == expected
    assert landed_times(path, "UTC", monkeypatch, session_zone="America/New_York") == expected
    # in New York (UTC-4 in summer) both orders fall on June 30: the business day, not the session's
    assert landed_times(path, "America/New_York", monkeypatch, session_zone="Asia/Tokyo") == [
        pd.Timestamp("2024-06-30 18:30"), pd.Timestamp("2024-06-30 23:59")]


def test_relanding_under_another_session_time_zone_adds_nothing(tmp_path, monkeypatch):
    frame = orders(["2024-06-30 22:30:00", "2024-07-01 03:59:00"])
    frame["order_ts"] = pd.to_datetime(frame["order_ts"]).dt.tz_localize("Europe/Berlin")
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path, index=False)
    monkeypatch.setenv("CLV_TIMEZONE", "UTC")
    with duckdb.connect() as con:
        land_file(con, "orders", str(path))
        con.execute("set TimeZone = 'America/New_York'")
        [again] = land_file(con, "orders", str(path))
        assert again.rows_inserted == 0
        assert con.execute("select count(*) from raw.orders").fetchall()[0][0] == 2


def test_daylight_saving_changes_follow_the_business_zone(tmp_path, monkeypatch):
    # Europe/London: clocks go forward at 01:00 UTC on 2024-03-31 and back at 01:00 UTC on 2024-10-27
    path = tmp_path / "orders.csv"
    orders(["2024-03-31T00:30:00Z", "2024-03-31T01:30:00Z", "2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z",
            "2024-10-26T23:30:00-01:00"]).to_csv(path, index=False)
    assert landed_times(path, "Europe/London", monkeypatch) == [
        pd.Timestamp("2024-03-31 00:30"), pd.Timestamp("2024-03-31 02:30"),  # 01:00-02:00 never happened
        pd.Timestamp("2024-10-27 01:30"), pd.Timestamp("2024-10-27 01:30"),  # 01:00-02:00 happened twice
        pd.Timestamp("2024-10-27 01:30")]  # 00:30 UTC: the next business day, not Oct 26


def test_an_unknown_time_zone_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CLV_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="CLV_TIMEZONE='Mars/Olympus_Mons' is not a known IANA time zone"):
        business_timezone()
    monkeypatch.delenv("CLV_TIMEZONE")
    assert business_timezone() == "UTC"


def test_postgres_sessions_are_utc_whatever_the_client_zone(monkeypatch):
    """libpq applies PGTZ to the session; the warehouse connection sets UTC over it."""
    from clv.warehouse.postgres import PostgresSettings
    from tests.conftest import scratch_postgres_database

    monkeypatch.setenv("PGTZ", "America/New_York")
    with scratch_postgres_database() as (_, database):
        conn = PostgresSettings.from_env().connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute("show timezone")
                assert cur.fetchone()[0] == "UTC"
        finally:
            conn.close()
        import psycopg2  # the same client without the setting follows PGTZ: the test can fail

        settings = PostgresSettings.from_env()
        plain = psycopg2.connect(host=settings.host, port=settings.port, user=settings.user, dbname=database)
        with plain.cursor() as cur:
            cur.execute("show timezone")
            assert cur.fetchone()[0] == "America/New_York"
        plain.close()
