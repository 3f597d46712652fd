"""The bad-input matrix: each broken export gives its documented outcome (landed with counts, or a clear
error), nothing is written past the validation gate, and the scores BI reads stay as they were."""

from __future__ import annotations

import json
import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv.ingest.contract import ContractError
from clv.ingest.landing import land_file
from clv.ingest.validation import InputValidationError
from clv.warehouse.embedded import publish_scores

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def good_orders(lines: int = 400, seed: int = 1, minutes_apart: int = 150) -> pd.DataFrame:
    """A clean export: 400 distinct order lines over 40 days of 2024 (or `lines` lines, 150 minutes apart)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"c{i % 50}" for i in range(lines)],
        "order_id": [f"o{seed}-{i // 2}" for i in range(lines)],
        "order_ts": pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(lines) * minutes_apart, unit="min"),
        "product_id": [f"p{i % 7}" for i in range(lines)],
        "quantity": rng.integers(1, 6, lines).astype(float),
        "unit_price": rng.uniform(1, 30, lines).round(2),
    })


@pytest.fixture
def warehouse(tmp_path):
    """A warehouse after a good weekly run: raw orders landed, scores published."""
    con = duckdb.connect(str(tmp_path / "clv.duckdb"))
    path = tmp_path / "week1.parquet"
    good_orders().to_parquet(path, index=False)
    land_file(con, "orders", path)
    publish_scores(con, pd.DataFrame({"customer_id": ["c1", "c2"], "predicted_clv_12m": [10.0, 20.0]}))
    yield con
    con.close()


def snapshot(con) -> dict:
    return {
        "orders": con.execute("select count(*), sum(quantity * unit_price) from raw.orders").fetchall(),
        "quarantine": con.execute("select count(*) from raw.quarantine").fetchall(),
        "loads": con.execute("select count(*) from raw.loads").fetchall(),
        "scores": con.execute("select * from clv_scores order by customer_id").fetchall(),
    }


def refused(con, tmp_path, frame_or_writer, name: str, error=InputValidationError, **kwargs) -> str:
    """Land a bad export, expect it refused with nothing changed; return the error message."""
    before = snapshot(con)
    path = tmp_path / name
    if callable(frame_or_writer):
        frame_or_writer(path)
    elif name.endswith(".csv"):
        frame_or_writer.to_csv(path, index=False)
    else:
        frame_or_writer.to_parquet(path, index=False)
    with pytest.raises(error) as raised:
        land_file(con, "orders", path, **kwargs)
    assert snapshot(con) == before, "a refused load changed the warehouse"
    message = str(raised.value)
    assert name in message
    return message


def landed(con, tmp_path, frame: pd.DataFrame, name: str, **kwargs):
    path = tmp_path / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path, index=False)
    [result] = land_file(con, "orders", path, **kwargs)
    return result


def test_empty_file(warehouse, tmp_path):
    message = refused(warehouse, tmp_path, good_orders().iloc[:0], "empty.csv", ContractError)
    assert "no rows" in message
    message = refused(warehouse, tmp_path, lambda p: p.write_bytes(b""), "zero-bytes.csv", ContractError)
    assert "empty file, 0 bytes" in message


def test_missing_required_column(warehouse, tmp_path):
    message = refused(warehouse, tmp_path, good_orders().drop(columns=["unit_price"]), "no-price.csv", ContractError)
    assert "missing required column(s) unit_price" in message


def test_extra_unknown_columns_are_ignored_and_reported(warehouse, tmp_path):
    frame = good_orders(seed=2).assign(coupon_code="SPRING", email="someone@example.com")
    path = tmp_path / "extra.parquet"
    frame.to_parquet(path, index=False)
    from clv.ingest.landing import DuckDBRawSink, land_staged, stage_file

    sink = DuckDBRawSink(warehouse)
    staged = stage_file(warehouse, "orders", path, sink)
    assert staged.report.ignored_columns == ["coupon_code", "email"]
    [result] = land_staged(warehouse, sink, [staged])
    assert result.rows_inserted == 400
    columns = {row[0] for row in warehouse.execute("describe raw.orders").fetchall()}
    assert not {"coupon_code", "email"} & columns


def test_text_in_quantity_is_quarantined(warehouse, tmp_path):
    frame = good_orders(seed=3).astype({"quantity": object})
    frame.loc[[3, 9], "quantity"] = ["two", "1,5"]
    result = landed(warehouse, tmp_path, frame, "text-quantity.csv")
    assert (result.rows_inserted, result.rows_quarantined) == (398, 2)
    reasons = warehouse.execute("select reason, count(*) from raw.quarantine group by 1").fetchall()
    assert reasons == [("quantity is not a valid number (text, NaN or infinite)", 2)]


def test_unparseable_dates_stop_the_load(warehouse, tmp_path):
    frame = good_orders(seed=4).astype({"order_ts": object})
    frame["order_ts"] = frame["order_ts"].map(lambda t: t.strftime("%d/%m/%Y %H:%M"))  # 13/03/2024: not ISO
    message = refused(warehouse, tmp_path, frame, "dates.csv")
    assert "column order_ts" in message and "order_ts is not a valid timestamp" in message
    assert "is missing" not in message  # the cause, not a symptom
    assert "day and month in local order" in message
    assert re.search(r"sample '\d\d/\d\d/2024 \d\d:\d\d'", message)  # one of the values as sent


def test_null_customer_ids(warehouse, tmp_path):
    frame = good_orders(seed=5)
    frame.loc[:19, "customer_id"] = None  # 5%: guest checkouts, quarantined
    result = landed(warehouse, tmp_path, frame, "some-guests.parquet")
    assert (result.rows_inserted, result.rows_quarantined) == (380, 20)
    frame = good_orders(seed=6)
    frame.loc[:299, "customer_id"] = None  # 75%: a broken export
    message = refused(warehouse, tmp_path, frame, "no-ids.parquet")
    assert "column customer_id" in message and "300 of 400 rows" in message


def test_negative_prices_are_quarantined_and_zero_prices_warned(warehouse, tmp_path):
    frame = good_orders(seed=7)
    frame.loc[:1, "unit_price"] = -5.0
    frame.loc[2:41, "unit_price"] = 0.0  # 10% free items
    from clv.ingest.landing import DuckDBRawSink, land_staged, stage_file

    path = tmp_path / "prices.parquet"
    frame.to_parquet(path, index=False)
    sink = DuckDBRawSink(warehouse)
    staged = stage_file(warehouse, "orders", path, sink)
    assert staged.report.quarantined == {"unit_price is negative": 2}
    [zero_warning] = [c for c in staged.report.warnings if c.column == "unit_price"]
    assert zero_warning.unexpected_count == 42  # the rule reads "price above zero": negatives count too
    [result] = land_staged(warehouse, sink, [staged])
    assert (result.rows_inserted, result.rows_quarantined, result.status) == (398, 2, "warnings")


def test_genuine_repeats_land_but_a_day_exported_twice_stops_the_load(warehouse, tmp_path):
    frame = good_orders(seed=8)
    result = landed(warehouse, tmp_path, pd.concat([frame, frame.iloc[[5]]]), "one-repeat.parquet")
    assert result.rows_inserted == 401  # an identical line can be genuine: kept
    frame = good_orders(seed=9, minutes_apart=20)  # 72 lines a day
    day = frame[frame["order_ts"].dt.date == frame["order_ts"].dt.date.iloc[100]]
    message = refused(warehouse, tmp_path, pd.concat([frame, day]), "day-twice.parquet")
    assert "day_repeated_line_share" in message and "exported twice" in message


def test_orders_in_the_future(warehouse, tmp_path):
    frame = good_orders(seed=10)
    frame.loc[:1, "order_ts"] = pd.Timestamp.now() + pd.Timedelta(days=30)
    result = landed(warehouse, tmp_path, frame, "some-future.parquet")
    assert result.rows_quarantined == 2
    assert warehouse.execute("select count(*) from raw.quarantine where reason like 'order_ts is in the future%'"
                             ).fetchall() == [(2,)]
    frame = good_orders(seed=11)
    frame["order_ts"] = frame["order_ts"] + pd.Timedelta(days=3650)  # the whole export a decade ahead
    message = refused(warehouse, tmp_path, frame, "all-future.parquet")
    assert "future" in message and "400 of 400 rows" in message


def test_a_single_huge_order_lands_with_a_warning(warehouse, tmp_path):
    frame = good_orders(seed=12)
    frame.loc[0, ["quantity", "unit_price"]] = [80995.0, 2.08]  # as in Online Retail, December 2011
    path = tmp_path / "huge.parquet"
    frame.to_parquet(path, index=False)
    from clv.ingest.landing import DuckDBRawSink, land_staged, stage_file

    sink = DuckDBRawSink(warehouse)
    staged = stage_file(warehouse, "orders", path, sink)
    [huge] = [c for c in staged.report.warnings if c.column == "line_value"]
    assert huge.unexpected_count == 1 and staged.report.status == "warnings"
    [result] = land_staged(warehouse, sink, [staged])
    assert result.rows_inserted == 400


def test_prices_in_cents_stop_the_load(warehouse, tmp_path):
    frame = good_orders(seed=13)
    frame["unit_price"] = (frame["unit_price"] * 100).round()
    message = refused(warehouse, tmp_path, frame, "cents.parquet")
    assert "expect_column_median_to_be_between on column line_value" in message and "cents" in message


def test_latin1_text(warehouse, tmp_path):
    frame = good_orders(seed=14)
    frame["product_id"] = "Crème brûlée dish"

    def latin1(path):
        path.write_bytes(frame.to_csv(index=False).encode("latin-1"))

    message = refused(warehouse, tmp_path, latin1, "export.csv", ContractError)
    assert "the text is not valid UTF-8 near line" in message and "encoding: latin-1" in message
    # the same file lands when its encoding is configured
    path = tmp_path / "export.csv"
    [result] = land_file(warehouse, "orders", path, encoding="latin-1")
    assert result.rows_inserted == 400
    assert warehouse.execute("select distinct product_id from raw.orders where order_id like 'o14-%'"
                             ).fetchall() == [("Crème brûlée dish",)]


def test_an_overlong_line_is_named_with_its_length(warehouse, tmp_path):
    def overlong(path):
        text = good_orders(seed=16).to_csv(index=False)
        path.write_text(text + "c1,o16-x,2024-03-01 00:00:00," + "x" * 3_000_000 + ",1,2\n")

    message = refused(warehouse, tmp_path, overlong, "overlong.csv", ContractError)
    assert "bytes, over the longest line read" in message and "xxxx" not in message
    assert "a line at line 402 is 3,000,034 bytes" in message  # the header, 400 lines, then it (DuckDB said 1)


def test_a_malformed_line_never_repeats_its_content(warehouse, tmp_path):
    """DuckDB quotes the offending line; the error must not (it may hold an e-mail address)."""
    path = tmp_path / "customers.csv"
    write_customers_with_a_malformed_line(path)
    with pytest.raises(ContractError) as raised:
        land_file(warehouse, "customers", path)
    message = str(raised.value)
    assert "person@example.com" not in message and "Person Name" not in message
    assert "a line near line 25,001 has 3 fields where the header has 2" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # nothing chained


def write_customers_with_a_malformed_line(path) -> None:
    """30,000 customers; line 25,001 (past DuckDB's sniffing sample) has an extra field with PII."""
    rows = ["customer_id,country"] + [f"c{i},UK" for i in range(30_000)]
    rows.insert(25_000, "c9,UK,person@example.com,Person Name")
    path.write_text("\n".join(rows) + "\n")


def _write(path, writer):
    writer(path)
    return path


def test_absurd_quantities_and_non_finite_numbers_are_quarantined(warehouse, tmp_path):
    frame = good_orders(seed=18, lines=2000)
    frame.loc[:8, "quantity"] = 1e12  # 0.45% of the lines, as in the report that found it
    frame.loc[9, "quantity"] = float("nan")
    frame.loc[10, "unit_price"] = float("inf")
    result = landed(warehouse, tmp_path, frame, "absurd.parquet")
    assert (result.rows_inserted, result.rows_quarantined) == (1989, 11)
    reasons = dict(warehouse.execute("select reason, count(*) from raw.quarantine group by 1").fetchall())
    assert reasons["quantity is implausible: over 100,000 times the load's median quantity (a unit or export error)"] == 9
    assert reasons["unit_price is not a valid number (text, NaN or infinite)"] == 1
    assert warehouse.execute("select max(abs(quantity * unit_price)) < 1000, count(*) filter (where not isfinite("
                             "quantity * unit_price)) from raw.orders").fetchone() == (True, 0)
    frame = good_orders(seed=19, lines=2000)
    frame.loc[:39, "quantity"] = 1e12  # 2%: the export is broken, not a few lines
    message = refused(warehouse, tmp_path, frame, "absurd-2pct.parquet")
    assert "column quantity" in message and "40 of 2,000 rows" in message and "implausible" in message


def test_unparseable_numbers_name_a_sample_and_the_likely_cause(warehouse, tmp_path):
    frame = good_orders(seed=20).astype({"unit_price": object})
    frame.loc[:19, "unit_price"] = "12,5"
    message = refused(warehouse, tmp_path, frame, "decimal-comma.csv")
    assert "column unit_price" in message and "20 of 400 rows" in message and "sample '12,5'" in message
    assert "decimal comma" in message and "is missing" not in message
    frame.loc[:19, "unit_price"] = "€12.5"
    assert "a currency sign" in refused(warehouse, tmp_path, frame, "currency.csv")
    frame = good_orders(seed=21).astype({"order_ts": object})
    frame["order_ts"] = (pd.to_datetime(frame["order_ts"]).astype("int64") // 10**9).astype(str)
    assert "epoch seconds" in refused(warehouse, tmp_path, frame, "epoch.csv")


def test_ids_exported_as_floats_are_the_same_customers(warehouse, tmp_path):
    frame = good_orders(seed=22)
    frame["customer_id"] = [str(i % 50) for i in range(400)]
    first = landed(warehouse, tmp_path, frame, "ids.csv")
    assert first.rows_inserted == 400
    as_float = frame.assign(customer_id=frame["customer_id"].astype(float))  # 3 -> 3.0 in the file
    again = landed(warehouse, tmp_path, as_float, "ids-float.parquet")
    assert again.rows_inserted == 0  # the same lines, not 400 new ones
    again_csv = landed(warehouse, tmp_path, as_float, "ids-float.csv")  # "3.0" as text
    assert again_csv.rows_inserted == 0
    assert warehouse.execute("select count(distinct customer_id) from raw.orders where order_id like 'o22-%'"
                             ).fetchone() == (50,)
    broken = good_orders(seed=23).assign(customer_id=[i % 50 + 0.5 for i in range(400)])
    message = refused(warehouse, tmp_path, broken, "ids-half.parquet")
    assert "customer_id is a number with decimals, not an id" in message


def test_padded_ids_are_the_same_customers(warehouse, tmp_path):
    """' c7 ' in a re-export is customer c7: trimmed, so the lines are the ones already landed."""
    padded = good_orders().assign(customer_id=lambda f: " " + f["customer_id"] + "  ")
    assert landed(warehouse, tmp_path, padded, "padded.csv").rows_inserted == 0
    assert warehouse.execute("select count(distinct customer_id) from raw.orders").fetchone() == (50,)


def test_a_re_export_that_starts_carrying_line_ids_is_refused_and_new_lines_with_them_land(warehouse, tmp_path):
    """The week landed without line_id, exported again with it: every row key changed, so every line would
    have landed twice (112 customers' scores +24% in the probe). Lines the warehouse has not seen land."""
    with_ids = good_orders().assign(line_id=[f"L{i}" for i in range(400)])
    message = refused(warehouse, tmp_path, with_ids, "with-line-ids.csv")
    assert "expect_lines_not_landed_before_without_line_id on column line_id failed (400 of 400 rows" in message
    assert "would count every line landed before twice" in message
    new_lines = good_orders(seed=60).assign(line_id=[f"N{i}" for i in range(400)])
    assert landed(warehouse, tmp_path, new_lines, "new-with-ids.csv").rows_inserted == 400
    assert landed(warehouse, tmp_path, new_lines, "new-with-ids-again.csv").rows_inserted == 0


def land_customers(con, tmp_path, ids: list[str], name: str = "customers.csv"):
    path = tmp_path / name
    pd.DataFrame({"customer_id": ids, "signup_ts": "2024-01-01", "country": "UK"}).to_csv(path, index=False)
    land_file(con, "customers", path)


def test_orders_naming_customers_the_customers_feed_lacks_are_refused_or_warned(warehouse, tmp_path):
    """Ids written another way (c007 for c7) would score phantom customers and take the real ones' week:
    over 5% unknown to the customers feed refuses the load, a few warn, none (or no feed at all) is quiet."""
    land_customers(warehouse, tmp_path, [f"c{i}" for i in range(50)])
    quiet = landed(warehouse, tmp_path, good_orders(seed=50), "known.csv")  # every customer known
    assert quiet.status == "passed"
    zero_padded = good_orders(seed=51).assign(customer_id=lambda f: f["customer_id"].str.replace("c", "c00"))
    message = refused(warehouse, tmp_path, zero_padded, "zero-padded.csv")
    assert "expect_order_customers_to_be_known on column customer_id failed (50 of 50 rows" in message
    assert "in no customers export landed or staged" in message and "leading zeros" in message
    land_customers(warehouse, tmp_path, [f"c{i}" for i in range(50, 150)], "more.csv")
    few = good_orders(seed=52, lines=600).assign(customer_id=[f"c{i % 149}" for i in range(600)])
    few.loc[few["customer_id"] == "c148", "customer_id"] = "c999"  # 1 of 149 customers unknown: 0.7%
    assert landed(warehouse, tmp_path, few, "few-unknown.csv").status == "warnings"


def test_without_a_customers_feed_order_customers_are_not_compared(warehouse, tmp_path):
    assert landed(warehouse, tmp_path, good_orders(seed=53).assign(customer_id="new"), "no-feed.csv"
                  ).status == "passed"


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_file_truncated_in_the_middle(warehouse, tmp_path, suffix):
    frame = good_orders(seed=15)

    def truncated(path):
        full = tmp_path / f"full{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(full, index=False)
        elif suffix == ".csv":
            frame.to_csv(full, index=False)
        else:
            full.write_text("\n".join(json.dumps(r, default=str) for r in frame.to_dict(orient="records")) + "\n")
        data = full.read_bytes()
        cut = len(data) // 2
        if suffix != ".parquet":  # cut inside a line, not at a line end
            cut = data.index(b"\n", cut) - 3
        path.write_bytes(data[:cut])

    message = refused(warehouse, tmp_path, truncated, f"truncated{suffix}", (ContractError, InputValidationError))
    assert "truncated" in message or "cannot be read" in message


def test_personal_data_in_a_failed_column_is_never_quoted(warehouse, tmp_path):
    """An e-mail in signup_ts was quoted as the error's sample (then in the validation report and 17 times in
    the Prefect database). It is withheld, with what it looks like; an ordinary failed value is quoted."""
    path = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(50)], "country": "UK",
                  "signup_ts": ["person@example.com"] * 5 + ["2024-01-01"] * 45}).to_csv(path, index=False)
    with pytest.raises(InputValidationError) as raised:
        land_file(warehouse, "customers", path)
    message = str(raised.value)
    assert "person@example.com" not in message and "example.com" not in message
    assert "column signup_ts failed (5 of 50 rows, observed sample withheld (it looks like an e-mail address" in message
    from clv.ingest.validation import quoted_sample
    assert quoted_sample("+44 20 7946 0958").startswith("withheld (it looks like a phone number")
    assert quoted_sample("12,5") == "'12,5'" and quoted_sample("1704067200") == "'1704067200'"


def test_e_mails_as_customer_ids_or_channels_are_refused_without_quoting_them(warehouse, tmp_path):
    """E-mails mapped to acquisition_channel or used as customer_id were stored as sent (and exported and
    scored in clear). Refused, naming the column and the count, never a value; ordinary ids land."""
    path = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(50)], "signup_ts": "2024-01-01", "country": "UK",
                  "acquisition_channel": ["ann@example.com"] * 2 + ["email"] * 48}).to_csv(path, index=False)
    with pytest.raises(InputValidationError) as raised:
        land_file(warehouse, "customers", path)
    message = str(raised.value)
    assert "expect_no_personal_data_outside_the_pii_columns on column acquisition_channel failed (2 of 50 rows" in message
    assert "example.com" not in message and "map another column, or the e-mail to `email`" in message
    ids = good_orders(seed=61).assign(customer_id=lambda f: f["customer_id"] + "@shop.example")
    message = refused(warehouse, tmp_path, ids, "email-ids.csv")
    assert "on column customer_id failed (400 of 400 rows" in message and "map a pseudonymous id" in message
    assert "shop.example" not in message
