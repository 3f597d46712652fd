"""Input contract, the Online Retail adapter, idempotent and all-or-nothing landing, PII handling."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from clv.ingest.contract import ContractError
from clv.ingest.landing import land_file
from clv.ingest.validation import InputValidationError

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

ORDERS = pd.DataFrame({
    "customer_id": ["1", "1", "2", "2"],
    "order_id": ["o1", "o1", "o2", "o2"],
    "order_ts": pd.to_datetime(["2024-01-01 10:00"] * 2 + ["2024-02-01 11:00"] * 2),
    "product_id": ["p1", "p2", "p1", "p1"],
    "quantity": [1, 2, 3, 3],
    "unit_price": [9.5, 2.0, 1.0, 1.0],
})
# 120 more distinct lines, so that the identical pair above is a genuine repeat (under 2% of lines),
# not a duplicated export.
ORDERS = pd.concat([ORDERS, pd.DataFrame({
    "customer_id": [str(3 + i % 20) for i in range(120)],
    "order_id": [f"o{3 + i}" for i in range(120)],
    "order_ts": pd.date_range("2024-03-01", periods=120, freq="D"),
    "product_id": ["p3"] * 120,
    "quantity": [1.0] * 120,
    "unit_price": [5.0] * 120,
})], ignore_index=True)


def write(frame: pd.DataFrame, path) -> str:
    if str(path).endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def raw_orders(con) -> pd.DataFrame:
    return con.execute("select * from raw.orders order by order_id, product_id").df()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_contract_file_lands_with_types(con, tmp_path, suffix):
    [result] = land_file(con, "orders", write(ORDERS, tmp_path / f"orders{suffix}"))
    assert (result.rows_read, result.rows_inserted, result.adapter) == (124, 124, None)
    landed = raw_orders(con)
    assert landed[landed["order_id"].isin(["o1", "o2"])]["quantity"].tolist() == [1.0, 2.0, 3.0, 3.0]
    assert landed["order_ts"].iloc[0] == pd.Timestamp("2024-01-01 10:00")
    assert landed["customer_id"].dtype == object and landed["customer_id"].iloc[0] == "1"


def test_landing_twice_adds_nothing_but_keeps_true_duplicates(con, tmp_path):
    path = write(ORDERS, tmp_path / "orders.parquet")  # rows 3 and 4 are identical lines
    land_file(con, "orders", path)
    [again] = land_file(con, "orders", path)
    assert again.rows_inserted == 0
    assert len(raw_orders(con)) == 124  # the identical pair is kept as two lines, once
    assert con.execute("select count(*) from raw.loads").fetchall()[0][0] == 2


def test_overlapping_export_adds_only_new_rows(con, tmp_path):
    land_file(con, "orders", write(ORDERS.iloc[:100], tmp_path / "week1.parquet"))
    [result] = land_file(con, "orders", write(ORDERS, tmp_path / "week2.parquet"))
    assert result.rows_inserted == 24
    assert len(raw_orders(con)) == 124


def test_rows_already_stored_are_found_whatever_their_date_or_lack_of_one(con, tmp_path):
    """The check for stored keys reads only stored rows dated like the load (or undated): customers
    without a signup time, with one, and a load of undated customers only, each landed twice."""
    dated = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
                          "signup_ts": pd.to_datetime(["2024-01-01 00:00:00.000000", None, "2024-03-31 23:59:59.999999",
                                                       None]),
                          "country": ["FR", "DE", "ES", "IT"]})
    undated = pd.DataFrame({"customer_id": ["e", "f"], "signup_ts": pd.to_datetime([None, None]),
                            "country": ["PT", "NL"]})
    for frame, name in ((dated, "dated"), (undated, "undated")):
        path = write(frame, tmp_path / f"{name}.parquet")
        [first] = land_file(con, "customers", path)
        [again] = land_file(con, "customers", path)
        assert (first.rows_inserted, again.rows_inserted) == (len(frame), 0), name
    # the same customers again among new ones dated before, between and after them
    more = pd.concat([dated, pd.DataFrame({"customer_id": ["g", "h"], "country": ["BE", "AT"],
                                           "signup_ts": pd.to_datetime(["2023-12-31", "2024-04-01"])})])
    [mixed] = land_file(con, "customers", write(more, tmp_path / "more.parquet"))
    assert mixed.rows_inserted == 2
    assert con.execute("select count(*), count(distinct row_key) from raw.customers").fetchall() == [(8, 8)]


def test_missing_required_column_names_file_and_column(con, tmp_path):
    path = write(ORDERS.drop(columns=["order_ts"]), tmp_path / "orders.csv")
    with pytest.raises(ContractError, match=r"orders file .*orders\.csv: missing required column\(s\) order_ts"):
        land_file(con, "orders", path)


def test_optional_column_may_be_absent(con, tmp_path):
    land_file(con, "orders", write(ORDERS.drop(columns=["product_id"]), tmp_path / "orders.parquet"))
    assert raw_orders(con)["product_id"].isna().all()


def test_a_few_values_of_wrong_type_are_quarantined_with_their_text(con, tmp_path):
    bad = ORDERS.astype({"quantity": object, "order_ts": object})
    bad.loc[5, "quantity"] = "three"
    bad.loc[6, "order_ts"] = "31/02/2024"
    [result] = land_file(con, "orders", write(bad, tmp_path / "orders.csv"))
    assert (result.rows_inserted, result.rows_quarantined, result.status) == (122, 2, "warnings")
    quarantined = con.execute("select reason, record from raw.quarantine order by reason").fetchall()
    assert [reason for reason, _ in quarantined] == ["order_ts is not a valid timestamp",
                                                     "quantity is not a valid number (text, NaN or infinite)"]
    assert '"31/02/2024"' in quarantined[0][1] and '"three"' in quarantined[1][1]  # the original text is kept
    assert result.rows_quarantined_new == 2
    # the same export again: its two rows still fail their checks, but nothing new reaches the quarantine
    [again] = land_file(con, "orders", write(bad, tmp_path / "orders.csv"))
    assert (again.rows_inserted, again.rows_quarantined, again.rows_quarantined_new) == (0, 2, 0)
    assert con.execute("select count(*) from raw.quarantine").fetchall()[0][0] == 2


def test_a_column_of_wrong_type_stops_the_load(con, tmp_path):
    bad = ORDERS.astype({"order_ts": object})
    bad["order_ts"] = "31/02/2024"
    with pytest.raises(InputValidationError) as error:
        land_file(con, "orders", write(bad, tmp_path / "orders.csv"))
    message = str(error.value)
    assert "orders.csv" in message and "column order_ts" in message and "124 of 124 rows" in message
    assert con.execute("select count(*) from raw.orders").fetchall()[0][0] == 0  # nothing landed
    assert con.execute("select count(*) from raw.quarantine").fetchall()[0][0] == 0


def test_empty_file_is_rejected(con, tmp_path):
    with pytest.raises(ContractError, match="no rows"):
        land_file(con, "orders", write(ORDERS.iloc[:0], tmp_path / "orders.parquet"))


def test_unknown_file_type_and_missing_file(con, tmp_path):
    (tmp_path / "orders.xlsx").write_text("x")
    with pytest.raises(ContractError, match="unsupported file type .xlsx"):
        land_file(con, "orders", tmp_path / "orders.xlsx")
    with pytest.raises(ContractError, match="file not found"):
        land_file(con, "orders", tmp_path / "absent.parquet")


def test_failed_load_leaves_raw_table_as_it_was(con, tmp_path, monkeypatch):
    path = write(ORDERS, tmp_path / "orders.parquet")
    land_file(con, "orders", write(ORDERS.iloc[:2], tmp_path / "first.parquet"))
    # Break the load log so the transaction fails after the rows were inserted.
    con.execute("drop table raw.loads")
    con.execute("create table raw.loads (only_one_column VARCHAR)")
    with pytest.raises(duckdb.Error):
        land_file(con, "orders", path)
    assert len(raw_orders(con)) == 2


ONLINE_RETAIL_II = pd.DataFrame({
    "Invoice": ["489434", "489434", "C489449", "489450"],
    "StockCode": ["85048", "79323P", "22087", "21871"],
    "Description": ["A", "B", "C", "D"],
    "Quantity": [12, 12, -12, 6],
    "InvoiceDate": pd.to_datetime(["2009-12-01 07:45"] * 2 + ["2009-12-01 10:33", "2009-12-02 09:00"]),
    "Price": [6.95, 6.75, 0.85, 1.25],
    "Customer ID": [13085.0, 13085.0, 16321.0, None],
    "Country": ["United Kingdom", "United Kingdom", "Australia", "United Kingdom"],
})


def test_online_retail_ii_adapter_maps_columns_and_derives_customers(con, tmp_path):
    results = land_file(con, "orders", write(ONLINE_RETAIL_II, tmp_path / "retail.csv"))
    assert [(r.entity, r.adapter, r.rows_inserted, r.rows_quarantined) for r in results] == [
        ("orders", "online_retail_ii", 3, 1), ("customers", "online_retail_ii", 2, 0)]
    landed = raw_orders(con)
    first = landed[landed["order_id"] == "489434"].iloc[0]
    assert (first["customer_id"], first["product_id"], first["quantity"], first["unit_price"]) == (
        "13085", "79323P", 12.0, 6.75)
    assert landed[landed["order_id"] == "C489449"]["quantity"].item() == -12
    # the line without a customer id is quarantined with its reason, not lost
    assert con.execute("select reason from raw.quarantine").fetchall() == [
        ("customer_id is missing (guest checkout or broken export)",)]
    customers = con.execute("select customer_id, country from raw.customers order by 1").fetchall()
    assert customers == [("13085", "United Kingdom"), ("16321", "Australia")]


def test_online_retail_i_column_names_are_recognised(con, tmp_path):
    renamed = ONLINE_RETAIL_II.rename(columns={"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"})
    [orders, _] = land_file(con, "orders", write(renamed, tmp_path / "retail.parquet"))
    assert orders.adapter == "online_retail" and (orders.rows_inserted, orders.rows_quarantined) == (3, 1)


CUSTOMERS = pd.DataFrame({
    "customer_id": ["1", "2"],
    "signup_ts": pd.to_datetime(["2023-05-01", "2023-06-01"]),
    "country": ["Germany", "France"],
    "acquisition_channel": ["email", "social"],
    "email": ["Ada@Example.com", "bob@example.com"],
    "name": ["Ada Lovelace", "Bob Stone"],
})


def test_pii_is_hashed_with_a_key_and_never_stored_in_clear(con, tmp_path, monkeypatch):
    monkeypatch.setenv("CLV_PII_HASH_KEY", "test-secret")
    land_file(con, "customers", write(CUSTOMERS, tmp_path / "customers.parquet"))
    rows = con.execute("select * from raw.customers order by customer_id").df()
    assert rows["email_hash"].str.fullmatch("[0-9a-f]{64}").all()
    dump = rows.astype(str).to_string()
    for clear in ["Ada@Example.com", "ada@example.com", "Ada Lovelace", "bob@example.com", "Bob Stone"]:
        assert clear not in dump
    # keyed: another key gives another hash
    con2 = duckdb.connect()
    monkeypatch.setenv("CLV_PII_HASH_KEY", "other-secret")
    land_file(con2, "customers", write(CUSTOMERS, tmp_path / "customers2.parquet"))
    assert con2.execute("select email_hash from raw.customers order by customer_id").fetchall()[0][0] != rows["email_hash"][0]


def test_pii_hashed_with_another_key_or_without_one_is_refused_and_the_same_key_lands(con, tmp_path, monkeypatch):
    """A changed key made incompatible hashes without a word, a missing one stored NULL hashes on new
    customer versions with one warning. raw.loads keeps the key's fingerprint (never the key); a load with
    another key, or without one after hashed loads, is refused naming both fingerprints."""
    from clv.ingest.landing import pii_key_fingerprint
    from clv.ingest.validation import InputValidationError

    monkeypatch.setenv("CLV_PII_HASH_KEY", "test-secret")
    first = pii_key_fingerprint()
    land_file(con, "customers", write(CUSTOMERS, tmp_path / "customers.parquet"))
    assert con.execute("select pii_key_fingerprint from raw.loads").fetchall() == [(first,)]
    assert "test-secret" not in str(con.execute("select * from raw.loads").fetchall())
    moved = CUSTOMERS.assign(country="Spain")  # new versions of both customers
    monkeypatch.setenv("CLV_PII_HASH_KEY", "other-secret")
    with pytest.raises(InputValidationError, match=f"key fingerprint {pii_key_fingerprint()}; earlier loads "
                                                   f"hashed with the key of fingerprint {first}"):
        land_file(con, "customers", write(moved, tmp_path / "moved.parquet"))
    monkeypatch.delenv("CLV_PII_HASH_KEY")
    with pytest.raises(InputValidationError, match=f"CLV_PII_HASH_KEY is not set; earlier loads hashed with the "
                                                   f"key of fingerprint {first}"):
        land_file(con, "customers", write(moved, tmp_path / "moved.parquet"))
    monkeypatch.setenv("CLV_PII_HASH_KEY", "test-secret")
    [landed] = land_file(con, "customers", write(moved, tmp_path / "moved.parquet"))
    assert landed.rows_inserted == 2
    assert con.execute("select count(*) from raw.customers where email_hash is null").fetchone() == (0,)


def test_a_version_that_changes_only_the_e_mail_lands_and_a_repeat_adds_nothing(con, tmp_path, monkeypatch):
    """The e-mail was not in the row key, so a customer's new e-mail never landed. Its hash now joins the
    key: the change lands as a new version carrying the new hash, a re-export of it adds nothing."""
    monkeypatch.setenv("CLV_PII_HASH_KEY", "test-secret")
    land_file(con, "customers", write(CUSTOMERS, tmp_path / "customers.parquet"))
    moved = CUSTOMERS.assign(email=["ada@newmail.org", "bob@example.com"])
    [landed] = land_file(con, "customers", write(moved, tmp_path / "moved.parquet"))
    assert landed.rows_inserted == 1
    hashes = con.execute("select email_hash from raw.customers where customer_id = '1' order by loaded_at").fetchall()
    assert len({h for (h,) in hashes}) == 2
    [again] = land_file(con, "customers", write(moved, tmp_path / "again.parquet"))
    assert again.rows_inserted == 0


def test_pii_is_dropped_without_a_key(con, tmp_path):
    land_file(con, "customers", write(CUSTOMERS, tmp_path / "customers.csv"))
    rows = con.execute("select * from raw.customers").df()
    assert rows["email_hash"].isna().all() and rows["name_hash"].isna().all()
    assert "Ada Lovelace" not in rows.astype(str).to_string()


def test_a_warehouse_from_the_first_release_is_upgraded_in_place(con, tmp_path):
    """raw tables created before quarantine, load statistics and line ids existed keep working, and the
    rows they hold keep their keys (re-landing the same export adds nothing)."""
    con.execute("create schema raw")
    con.execute("""create table raw.orders (row_key VARCHAR, customer_id VARCHAR, order_id VARCHAR,
                   order_ts TIMESTAMP, product_id VARCHAR, quantity DOUBLE, unit_price DOUBLE,
                   load_id VARCHAR, loaded_at TIMESTAMP)""")
    con.execute("""create table raw.loads (load_id VARCHAR, entity VARCHAR, source VARCHAR, adapter VARCHAR,
                   rows_read BIGINT, rows_inserted BIGINT, loaded_at TIMESTAMP)""")
    path = write(ORDERS, tmp_path / "orders.parquet")
    # the first release's key: md5 of the contract columns and the occurrence number
    con.execute(f"""insert into raw.orders
        select md5(concat_ws('|', coalesce(cast(customer_id as varchar), '\\N'), coalesce(cast(order_id as varchar), '\\N'),
                   coalesce(cast(order_ts as varchar), '\\N'), coalesce(cast(product_id as varchar), '\\N'),
                   coalesce(cast(quantity as varchar), '\\N'), coalesce(cast(unit_price as varchar), '\\N'),
                   cast(row_number() over (partition by customer_id, order_id, order_ts, product_id, quantity,
                                           unit_price) as varchar))),
               customer_id, order_id, order_ts, product_id, cast(quantity as double), unit_price, 'old', now()
        from read_parquet('{path}')""")
    [result] = land_file(con, "orders", path)
    assert (result.rows_read, result.rows_inserted) == (124, 0)
    columns = [row[0] for row in con.execute("describe raw.loads").fetchall()]
    assert {"rows_quarantined", "value_median", "status", "days_covered", "quarantined_by_reason"} <= set(columns)
    days = con.execute("select count(distinct cast(order_ts as date)) from raw.orders").fetchall()[0][0]
    assert con.execute("select days_covered from raw.loads").fetchall() == [(days,)]
    assert "line_id" in [row[0] for row in con.execute("describe raw.orders").fetchall()]
