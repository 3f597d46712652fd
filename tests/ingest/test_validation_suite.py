"""The expectation suites give the same verdicts whatever unit the staged timestamps arrive in: DuckDB hands
pandas microseconds, which Great Expectations compares value by value in Python; `run_suite` converts them
to nanoseconds where they fit, the unit GX compares vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv.ingest import validation

pytestmark = pytest.mark.fast


def events(n: int = 2_000, seed: int = 3) -> pd.DataFrame:
    """Staged events as DuckDB hands them over (microsecond timestamps), thirty of them implausibly dated."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86_400, n), unit="s")
    frame = pd.DataFrame({
        "customer_id": [f"c{i % 300}" for i in range(n)], "session_id": [f"s{i // 4}" for i in range(n)],
        "event_ts": ts.astype("datetime64[us]"), "event_type": rng.choice(["page_view", "search", "checkout"], n),
        "session_duration_s": rng.uniform(1, 900, n)})
    frame.loc[:14, "event_ts"] = pd.Timestamp("1950-06-01")  # before the earliest plausible time
    frame.loc[15:29, "event_ts"] = pd.Timestamp("2200-01-01")  # in the future, still within nanoseconds' range
    frame.loc[31, "event_ts"] = pd.NaT  # a missing time: the null check's, not the window's
    return frame


def verdicts(frame: pd.DataFrame) -> list[tuple]:
    parameters = validation.run_parameters([])
    return [(c.expectation, c.column, c.success, c.unexpected_count, c.checked_rows)
            for c in validation.run_suite("events", frame, parameters)]


def test_timestamps_that_fit_are_compared_in_nanoseconds():
    frame = events()
    converted = validation.nanosecond_timestamps(frame)
    assert str(frame["event_ts"].dtype) == "datetime64[us]" and str(converted["event_ts"].dtype) == "datetime64[ns]"
    assert converted["event_ts"].equals(frame["event_ts"].astype("datetime64[ns]"))
    assert converted["session_duration_s"] is frame["session_duration_s"] or converted["session_duration_s"].equals(
        frame["session_duration_s"])


def test_a_timestamp_beyond_nanoseconds_keeps_its_unit_and_is_still_caught():
    frame = events()
    frame.loc[30, "event_ts"] = pd.Timestamp("9999-12-31")  # a placeholder date some exports use
    assert str(validation.nanosecond_timestamps(frame)["event_ts"].dtype) == "datetime64[us]"
    [between] = [v for v in verdicts(frame) if v[:2] == ("expect_column_values_to_be_between", "event_ts")]
    assert between[3] == 31  # 15 too old, 15 + 1 in the future


def test_the_suite_says_the_same_in_either_unit(monkeypatch):
    frame = events()
    fast = verdicts(frame)
    monkeypatch.setattr(validation, "nanosecond_timestamps", lambda f: f)  # GX on microseconds, as before
    slow = verdicts(frame)
    assert fast == slow
    [between] = [v for v in fast if v[:2] == ("expect_column_values_to_be_between", "event_ts")]
    assert between[2:4] == (False, 30)  # 30 of 2,000 outside the window: over the 1% the rule allows


def orders(lines: int, week: int, seed: int = 5) -> pd.DataFrame:
    """`lines` distinct order lines of one week's export."""
    rng = np.random.default_rng(seed + week)
    return pd.DataFrame({
        "customer_id": [f"c{i % 900}" for i in range(lines)], "order_id": [f"w{week}-o{i // 3}" for i in range(lines)],
        "order_ts": pd.Timestamp("2024-03-04") + pd.Timedelta(days=7 * week)
        + pd.to_timedelta(rng.integers(0, 7 * 86_400, lines), unit="s"),
        "product_id": [f"p{i % 40}" for i in range(lines)], "quantity": rng.integers(1, 4, lines).astype(float),
        "unit_price": rng.uniform(2, 40, lines).round(2)})


def staged_load(con, frame: pd.DataFrame, path):
    from clv.ingest.landing import stage_file

    frame.to_parquet(path, index=False)
    return stage_file(con, "orders", str(path))


def row_count_check(staged) -> validation.CheckResult:
    [check] = [c for c in staged.report.checks if c.expectation == "expect_table_row_count_to_be_between"]
    return check


def test_a_sampled_load_is_counted_whole(tmp_path, monkeypatch):
    """GX sees a sample of a large load; the row-count check still measures the load against the recent
    ones: quiet for a load like the last, firing for one over ten times larger."""
    import duckdb

    from clv.ingest.landing import DuckDBRawSink, land_staged

    monkeypatch.setenv(validation.SAMPLE_ROWS_ENV, "1000")
    con = duckdb.connect()
    sink = DuckDBRawSink(con)
    land_staged(con, sink, [staged_load(con, orders(20_000, 0), tmp_path / "w0.parquet")])
    like_the_last = staged_load(con, orders(20_000, 1), tmp_path / "w1.parquet")
    assert 500 < like_the_last.report.rows_checked < 2_000  # a sample, under the 2,000 the bound starts at
    check = row_count_check(like_the_last)
    assert (check.success, check.observed) == (True, "20000")
    land_staged(con, sink, [like_the_last])
    huge = staged_load(con, orders(250_000, 2), tmp_path / "w2.parquet")
    assert huge.report.rows_checked < 2_000
    check = row_count_check(huge)
    assert (check.success, check.observed, check.severity) == (False, "250000", "warning")


def test_the_sample_is_the_same_rows_whatever_their_order(tmp_path, monkeypatch):
    from clv.ingest.landing import ENTITIES, _validation_frame

    import duckdb

    monkeypatch.setenv(validation.SAMPLE_ROWS_ENV, "1000")
    frame = orders(20_000, 0)
    samples = []
    for name, export in (("sorted", frame), ("shuffled", frame.sample(frac=1.0, random_state=1))):
        con = duckdb.connect()
        staged = staged_load(con, export, tmp_path / f"{name}.parquet")
        sample = _validation_frame(con, ENTITIES["orders"], staged.table, staged.rows_read)
        samples.append(sample.sort_values(["order_id", "product_id"]).reset_index(drop=True))
    assert 500 < len(samples[0]) < 2_000
    pd.testing.assert_frame_equal(samples[0], samples[1])
