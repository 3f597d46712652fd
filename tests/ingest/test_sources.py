"""Sources: a PostgreSQL OLTP database extracted by watermark and a directory of JSON-lines events by
day land idempotently (real PostgreSQL server); files on S3 by date partition (moto); a failing source
lands nothing, not even the others; PII never reaches the warehouse in clear text."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from clv.ingest.landing import DuckDBRawSink
from clv.ingest.sources import FileSource, SourceConfigError, land_sources, load_sources
from clv.ingest.validation import InputValidationError
from tests.conftest import assert_no_clear_text, moto_s3, scratch_postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.fast]
PII_VALUES = ["ada@example.com", "Ada Lovelace", "+44 20 7946 0001", "12 St James's Square",
              "bob@example.com", "Bob Stone", "+44 20 7946 0002", "1 Infinite Loop"]


@pytest.fixture
def shop_database(monkeypatch):
    """An OLTP database of the shop (its own column names) on the real PostgreSQL server."""
    from clv.warehouse.postgres import PostgresSettings

    with scratch_postgres_database() as (_, name):
        settings = PostgresSettings.from_env()
        conn = settings.connect(name)
        with conn, conn.cursor() as cur:
            cur.execute("""create table public.order_lines (line_id serial primary key, customer_ref text,
                           order_number text, ordered_at timestamp, sku text, qty integer, price numeric(10, 2),
                           updated_at timestamp not null)""")
            cur.execute("""create table public.accounts (account_id text primary key, email text, full_name text,
                           phone text, street text, created_at timestamp, channel text, country text,
                           updated_at timestamp not null)""")
            cur.execute("""insert into public.accounts values
                ('a1', 'ada@example.com', 'Ada Lovelace', '+44 20 7946 0001', '12 St James''s Square',
                 '2024-01-05', 'email', 'United Kingdom', '2024-03-01 09:00'),
                ('a2', 'bob@example.com', 'Bob Stone', '+44 20 7946 0002', '1 Infinite Loop',
                 '2024-02-10', 'organic', 'United States', '2024-03-01 09:00')""")
            add_order_lines(cur, 1, 60, datetime(2024, 3, 1))
        dsn = (f"host={settings.host} port={settings.port} user={settings.user} dbname={name}"
               + (f" password={settings.password}" if settings.password else ""))
        monkeypatch.setenv("SHOP_DB_DSN", dsn)
        yield conn
        conn.close()


def add_order_lines(cur, first: int, count: int, updated_at: datetime) -> None:
    for i in range(first, first + count):
        cur.execute("insert into public.order_lines (customer_ref, order_number, ordered_at, sku, qty, price, "
                    "updated_at) values (%s, %s, %s, %s, %s, %s, %s)",
                    [f"a{1 + i % 2}", f"N{i // 3}", datetime(2024, 3, 1) + timedelta(hours=i), f"sku{i % 5}",
                     1 + i % 3, 9.99, updated_at])


def write_events(directory, day: date, sessions: int) -> None:
    """One day partition as a stream delivery service writes it: dt=YYYY-MM-DD/part-0000.jsonl."""
    folder = directory / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(sessions):
        start = datetime.combine(day, datetime.min.time()) + timedelta(hours=s)
        for k, kind in enumerate(["session_start", "page_view", "add_to_cart"]):
            lines.append({"user": f"a{1 + s % 2}", "session": f"{day}-{s}", "ts": str(start + timedelta(minutes=k)),
                          "type": kind, "duration": 300.0})
    (folder / "part-0000.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")


SOURCES_YML = """
sources:
  - name: shop_order_lines
    kind: postgres
    entity: orders
    table: public.order_lines
    watermark_column: updated_at
    dsn_env: SHOP_DB_DSN
    columns: {customer_id: customer_ref, order_id: order_number, order_ts: ordered_at, product_id: sku,
              quantity: qty, unit_price: price, line_id: line_id, updated_at: updated_at}
  - name: shop_accounts
    kind: postgres
    entity: customers
    table: public.accounts
    watermark_column: updated_at
    dsn_env: SHOP_DB_DSN
    columns: {customer_id: account_id, signup_ts: created_at, acquisition_channel: channel,
              email: email, name: full_name, phone: phone, address: street}
  - name: web_events
    kind: files
    entity: events
    path: events/dt=*/*.jsonl
    since: 2024-03-01
    columns: {customer_id: user, session_id: session, event_ts: ts, event_type: type, session_duration_s: duration}
"""


def counts(con) -> dict:
    return {t: con.execute(f"select count(*) from raw.{t}").fetchall()[0][0]
            for t in ("orders", "customers", "events", "quarantine", "loads")}


def test_postgres_and_event_sources_land_idempotently(shop_database, tmp_path, monkeypatch):
    monkeypatch.setenv("CLV_PII_HASH_KEY", "a-secret-from-the-vault")
    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    write_events(tmp_path / "events", date(2024, 2, 28), 4)  # before `since`: not read
    write_events(tmp_path / "events", date(2024, 3, 1), 5)
    write_events(tmp_path / "events", date(2024, 3, 2), 5)
    sources = load_sources(tmp_path / "sources.yml")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    sink = DuckDBRawSink(con)

    first, reports = land_sources(con, sink, sources, tmp_path / "cache")
    assert [(r.entity, r.rows_read, r.rows_inserted) for r in first] == [
        ("orders", 60, 60), ("customers", 2, 2), ("events", 30, 30)]
    assert all(r.status == "passed" for r in reports)
    assert sink.get_watermark("shop_order_lines") == datetime(2024, 3, 1)
    landed = con.execute("select customer_id, order_id, quantity, unit_price from raw.orders order by order_ts limit 1"
                         ).fetchall()
    assert landed == [("a2", "N0", 2.0, 9.99)]

    # same watermark, same files: nothing new (the lookback re-reads the last hour; nothing lands twice)
    again, _ = land_sources(con, sink, sources, tmp_path / "cache")
    assert [(r.entity, r.rows_inserted) for r in again] == [("orders", 0), ("customers", 0), ("events", 0)]
    before = counts(con)

    # new rows in the OLTP database and a new day of events: exactly those land
    with shop_database, shop_database.cursor() as cur:
        add_order_lines(cur, 61, 9, datetime(2024, 3, 8))
    write_events(tmp_path / "events", date(2024, 3, 3), 2)
    third, _ = land_sources(con, sink, sources, tmp_path / "cache")
    assert [(r.entity, r.rows_read, r.rows_inserted) for r in third] == [
        ("orders", 69, 9), ("customers", 2, 0), ("events", 36, 6)]
    assert counts(con)["orders"] == before["orders"] + 9
    assert sink.get_watermark("shop_order_lines") == datetime(2024, 3, 8)
    assert_no_clear_pii(con)
    hashes = con.execute("select email_hash, name_hash, phone_hash, address_hash from raw.customers").fetchall()
    assert all(len(h) == 64 for row in hashes for h in row)


def test_an_edited_oltp_line_lands_as_a_new_version_valid_from_its_change(shop_database, tmp_path, clv_home):
    from clv.transform import run_dbt

    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    write_events(tmp_path / "events", date(2024, 3, 1), 1)
    sources = load_sources(tmp_path / "sources.yml")
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        land_sources(con, DuckDBRawSink(con), sources, tmp_path / "cache")
    with shop_database, shop_database.cursor() as cur:  # the shop corrects a quantity a week later
        cur.execute("update public.order_lines set qty = 7, updated_at = '2024-03-08' where line_id = 5")
    with duckdb.connect(str(warehouse)) as con:
        orders = land_sources(con, DuckDBRawSink(con), sources, tmp_path / "cache")[0][0]
        # the lookback re-reads the lines of the last watermark: only the corrected one is new
        assert (orders.entity, orders.rows_read, orders.rows_inserted) == ("orders", 60, 1)
        assert con.execute("select count(*), count(distinct line_id) from raw.orders").fetchall() == [(61, 60)]
    run_dbt(["run", "--select", "stg_shop__orders"], warehouse=warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        current = con.execute("select count(*), sum(quantity) filter (where order_id = 'N1' and product_id = 'sku0') "
                              "from stg_shop__orders where valid_to = '9999-12-31'").fetchall()
        versions = con.execute("select quantity, valid_from, valid_to from stg_shop__orders where line_id = '5' "
                               "order by valid_from").fetchall()
    assert current == [(60, 7.0)]  # one current row per line, the corrected quantity
    # both versions are kept: the first until the shop's change time, the correction from then on
    assert [(q, str(t)) for q, _, t in versions] == [(versions[0][0], "2024-03-08 00:00:00"), (7.0, "9999-12-31 00:00:00")]
    assert str(versions[1][1]) == "2024-03-08 00:00:00"


def test_a_failing_source_lands_nothing_and_keeps_the_watermark(shop_database, tmp_path):
    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    folder = tmp_path / "events" / "dt=2024-03-01"
    folder.mkdir(parents=True)
    broken = [{"user": None, "session": f"s{i}", "ts": "2024-03-01 10:00:00", "type": "page_view", "duration": 1.0}
              for i in range(10)]  # anonymous events only: customer_id missing on every row
    (folder / "part-0000.jsonl").write_text("\n".join(json.dumps(b) for b in broken) + "\n")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    sink = DuckDBRawSink(con)
    with pytest.raises(InputValidationError, match=r"events from web_events.*customer_id.*10 of 10 rows"):
        land_sources(con, sink, load_sources(tmp_path / "sources.yml"), tmp_path / "cache")
    assert counts(con) == {"orders": 0, "customers": 0, "events": 0, "quarantine": 0, "loads": 0}
    assert sink.get_watermark("shop_order_lines") is None


def assert_no_clear_pii(con) -> None:
    assert_no_clear_text(con, PII_VALUES)


def test_rows_committed_late_below_the_watermark_are_not_lost(shop_database, tmp_path):
    """A long transaction commits rows stamped before the watermark the last load reached: the lookback
    re-reads them; without it (lookback 0, the old strict `>`) they are lost."""
    for lookback, expected in ((60, 42), (0, 40)):
        (tmp_path / "sources.yml").write_text(SOURCES_YML.replace(
            "    dsn_env: SHOP_DB_DSN\n    columns: {customer_id: customer_ref",
            f"    dsn_env: SHOP_DB_DSN\n    lookback_minutes: {lookback}\n    columns: {{customer_id: customer_ref", 1))
        [orders] = [s for s in load_sources(tmp_path / "sources.yml") if s.name == "shop_order_lines"]
        with shop_database, shop_database.cursor() as cur:
            cur.execute("delete from public.order_lines")
            add_order_lines(cur, 1, 20, datetime(2024, 3, 1, 12, 0))
        con = duckdb.connect(str(tmp_path / f"warehouse-{lookback}.duckdb"))
        sink = DuckDBRawSink(con)
        land_sources(con, sink, [orders], tmp_path / "cache")
        with shop_database, shop_database.cursor() as cur:
            add_order_lines(cur, 21, 20, datetime(2024, 3, 1, 12, 30))  # committed next
            add_order_lines(cur, 41, 2, datetime(2024, 3, 1, 11, 55))  # committed late, stamped earlier
        land_sources(con, sink, [orders], tmp_path / "cache")
        land_sources(con, sink, [orders], tmp_path / "cache")  # and again: nothing twice
        assert con.execute("select count(*), count(distinct row_key) from raw.orders").fetchone() == (expected, expected)
        con.close()


def test_rows_without_a_watermark_are_extracted_after_the_first_load(shop_database, tmp_path, caplog):
    """Rows whose watermark column is NULL were read by the first load only (`updated_at > since` is never
    true for NULL); now every run reads them, their row keys land them once, and the run warns."""
    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    [orders] = [s for s in load_sources(tmp_path / "sources.yml") if s.name == "shop_order_lines"]
    with shop_database, shop_database.cursor() as cur:
        cur.execute("delete from public.order_lines")
        cur.execute("alter table public.order_lines alter column updated_at drop not null")
        add_order_lines(cur, 1, 20, datetime(2024, 3, 1, 12, 0))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    sink = DuckDBRawSink(con)
    try:
        land_sources(con, sink, [orders], tmp_path / "cache")
        with shop_database, shop_database.cursor() as cur:
            add_order_lines(cur, 21, 3, None)  # inserted later, without a watermark
        with caplog.at_level("WARNING", logger="clv.ingest.sources"):
            land_sources(con, sink, [orders], tmp_path / "cache")
        land_sources(con, sink, [orders], tmp_path / "cache")  # again: nothing twice
        assert con.execute("select count(*), count(distinct row_key) from raw.orders").fetchone() == (23, 23)
        assert "3 rows without updated_at are read again every run" in caplog.text
    finally:
        con.close()
        with shop_database, shop_database.cursor() as cur:
            cur.execute("delete from public.order_lines where updated_at is null")
            cur.execute("alter table public.order_lines alter column updated_at set not null")


def test_the_example_sources_file_is_valid():
    from clv.config import REPO_ROOT

    sources = load_sources(REPO_ROOT / "sources.example.yml")
    assert [(s.name, s.entity) for s in sources] == [
        ("shop_order_lines", "orders"), ("shop_accounts", "customers"), ("web_events", "events")]


def test_sources_file_errors_name_the_setting(tmp_path):
    bad = tmp_path / "sources.yml"
    bad.write_text("sources:\n  - name: x\n    kind: files\n    entity: orders\n    path: a.csv\n    columns: {price: p}\n")
    with pytest.raises(SourceConfigError, match=r"source x: columns maps unknown contract column\(s\) price"):
        load_sources(bad)
    bad.write_text("sources:\n  - name: y\n    kind: postgres\n    entity: orders\n")
    with pytest.raises(SourceConfigError, match="source y: missing setting table"):
        load_sources(bad)
    bad.write_text("sources:\n  - name: z\n    kind: files\n    entity: orders\n    path: a.csv\n    pathh: b.csv\n")
    with pytest.raises(SourceConfigError, match=r"sources.yml, line 6: source z: unknown setting\(s\) pathh"):
        load_sources(bad)
    bad.write_text("sources:\n  - name: z\n    kind: files\n    entity: orders\n    path: [a.csv]\n")
    with pytest.raises(SourceConfigError, match=r"line 5: source z: path must be text \(got \['a.csv'\]\)"):
        load_sources(bad)
    bad.write_text("sources:\n  - just a string\n")
    with pytest.raises(SourceConfigError, match="source #1 is not a mapping of settings"):
        load_sources(bad)
    bad.write_text("sources:\n  - name: ../../x\n    kind: postgres\n    entity: orders\n    table: t\n"
                   "    watermark_column: u\n")
    with pytest.raises(SourceConfigError, match="source ../../x: name must be letters, digits"):
        load_sources(bad)
    bad.write_text("sources:\n  - name: w\n    kind: postgres\n    entity: orders\n    table: t\n"
                   "    watermark_column: u\n    lookback_minutes: -5\n")
    with pytest.raises(SourceConfigError, match="lookback_minutes must be 0 or more"):
        load_sources(bad)
    bad.write_text("source:\n  - name: x\n")
    with pytest.raises(SourceConfigError, match=r"unknown key\(s\) source"):
        load_sources(bad)


def test_a_literal_path_is_read_as_is_and_only_wildcards_glob(tmp_path):
    from clv.ingest.contract import ContractError
    from clv.ingest.landing import land_file

    frame = pd.DataFrame({"customer_id": ["a", "b"], "order_id": ["1", "2"], "order_ts": ["2024-03-01", "2024-03-02"],
                          "quantity": [1, 2], "unit_price": [10.0, 20.0]})
    frame.to_csv(tmp_path / "orders[2024].csv", index=False)
    frame.assign(customer_id=["x", "y"]).to_csv(tmp_path / "orders2.csv", index=False)
    con = duckdb.connect()
    sink = DuckDBRawSink(con)
    literal = FileSource("orders", "orders", str(tmp_path / "orders[2024].csv"))
    assert literal.files(tmp_path) == [tmp_path / "orders[2024].csv"]
    land_sources(con, sink, [literal], tmp_path / "cache")
    assert con.execute("select customer_id from raw.orders order by 1").fetchall() == [("a",), ("b",)]  # not x, y
    with pytest.raises(ContractError, match="file not found"):
        FileSource("orders", "orders", str(tmp_path / "orders[2025].csv")).files(tmp_path)  # not orders2.csv
    assert len(FileSource("orders", "orders", str(tmp_path / "orders*.csv")).files(tmp_path)) == 2
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(ContractError, match=r"x.csv is a directory \(rule: give a file, or a pattern"):
        FileSource("orders", "orders", str(tmp_path / "x.csv")).files(tmp_path)
    with pytest.raises(ContractError, match="is a directory"):
        land_file(con, "orders", tmp_path / "x.csv")


def test_a_column_mapping_cannot_inject_sql(tmp_path):
    from clv.ingest.landing import land_file

    crafted = 'qty", (select 42) as "x'
    pd.DataFrame({"customer_id": ["a"], "order_id": ["1"], "order_ts": [pd.Timestamp("2024-03-01")],
                  crafted: [3.0], "unit_price": [10.0]}).to_parquet(tmp_path / "o.parquet", index=False)
    con = duckdb.connect()
    land_file(con, "orders", tmp_path / "o.parquet", column_map={"quantity": crafted})
    assert con.execute("select quantity from raw.orders").fetchall() == [(3.0,)]  # the column's value, not 42


def test_s3_files_by_date_partition(tmp_path, monkeypatch):
    """S3 through moto (in-process; offline stand-in for AWS): only the partitions in the window are
    listed, copied to the cache and landed."""
    with moto_s3(monkeypatch, "shop-exports") as s3:
        for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
            frame = pd.DataFrame({"customer_id": ["c1", "c2"], "order_id": [f"{day}-1", f"{day}-2"],
                                  "order_ts": pd.to_datetime([f"{day} 10:00"] * 2), "quantity": [1.0, 2.0],
                                  "unit_price": [5.0, 7.5]})
            path = tmp_path / f"{day}.parquet"
            frame.to_parquet(path, index=False)
            s3.upload_file(str(path), "shop-exports", f"orders/dt={day}/part-0.parquet")
        s3.put_object(Bucket="shop-exports", Key="orders/_SUCCESS", Body=b"")
        source = FileSource("s3_orders", "orders", "s3://shop-exports/orders/dt=*/*.parquet",
                            since=date(2024, 3, 2))
        assert [p.relative_to(tmp_path / "cache").as_posix() for p in source.files(tmp_path / "cache")] == [
            "shop-exports/orders/dt=2024-03-02/part-0.parquet", "shop-exports/orders/dt=2024-03-03/part-0.parquet"]
        con = duckdb.connect()
        results, _ = land_sources(con, DuckDBRawSink(con), [source], tmp_path / "cache")
    assert [(r.rows_read, r.rows_inserted) for r in results] == [(4, 4)]
    assert con.execute("select min(order_ts)::date::varchar from raw.orders").fetchall() == [("2024-03-02",)]


def test_a_corrected_s3_object_of_the_same_size_is_downloaded_again_and_keys_stay_in_the_cache(tmp_path,
                                                                                               monkeypatch):
    """The cache kept any copy of the same size, so a corrected export (new prices, same bytes count) landed
    the old prices; an object key with `../` was written outside the cache."""
    from clv.cloud.storage import download

    cache = tmp_path / "cache"
    with moto_s3(monkeypatch, "shop-exports") as s3:
        s3.put_object(Bucket="shop-exports", Key="orders/day.csv", Body=b"price\n10.5\n")
        first = download("s3://shop-exports/orders/day.csv", cache, s3)
        assert first.read_bytes() == b"price\n10.5\n"
        again = download("s3://shop-exports/orders/day.csv", cache, s3)
        assert again == first and again.read_bytes() == b"price\n10.5\n"  # unchanged: the copy is reused
        s3.put_object(Bucket="shop-exports", Key="orders/day.csv", Body=b"price\n12.5\n")  # same size
        assert download("s3://shop-exports/orders/day.csv", cache, s3).read_bytes() == b"price\n12.5\n"
        s3.put_object(Bucket="shop-exports", Key="../../outside.csv", Body=b"x\n")
        with pytest.raises(ValueError, match="leads outside the download cache"):
            download("s3://shop-exports/../../outside.csv", cache, s3)
    assert not (tmp_path / "outside.csv").exists()


def test_a_malformed_connection_string_is_named_without_echoing_any_of_it(tmp_path, monkeypatch):
    """libpq answers 'missing "=" after "secret"' for `password=top secret`: a piece of the password in the
    run's error line, its logs and the Prefect database. The fragment is withheld."""
    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    [orders] = [s for s in load_sources(tmp_path / "sources.yml") if s.name == "shop_order_lines"]
    monkeypatch.setenv(orders.dsn_env, "host=127.0.0.1 user=shop password=top secret")
    with pytest.raises(SourceConfigError, match=f"source shop_order_lines: the connection string in "
                                                f"{orders.dsn_env} is malformed") as raised:
        orders.connect()
    assert "secret" not in str(raised.value) and 'missing "..." after "..."' in str(raised.value)
