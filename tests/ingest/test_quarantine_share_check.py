"""The quarantine's warning measures each reason's share of a load against its usual share in the recent
loads: Online Retail quarantines about a fifth of every week's lines for a missing customer id (guest
checkouts), its normal, so a weekly load warns only when a reason's share is over twice its usual one."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from clv.ingest.landing import DuckDBRawSink, land_staged, stage_file
from clv.ingest.validation import QUARANTINE_EXPECTATION, quarantine_check, usual_quarantine_shares

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "bundled" / "online_retail_ii.parquet"
GUEST = "customer_id is missing (guest checkout or broken export)"


def recorded(rows: int, by_reason: dict | None) -> tuple:
    """A recent load as raw.loads gives it: rows read, median line value, days covered, reasons (JSON)."""
    return rows, 10.0, 7, None if by_reason is None else json.dumps(by_reason)


def test_a_reason_at_its_usual_share_stays_quiet_and_at_over_twice_it_warns():
    recent = [recorded(1_000, {GUEST: 200}), recorded(1_000, {GUEST: 250}), recorded(2_000, {GUEST: 300})]
    assert usual_quarantine_shares(recent) == {GUEST: 0.2}
    quiet = quarantine_check({GUEST: 390}, 1_000, recent)
    assert quiet.success and quiet.observed == f"{GUEST}: 39.0% (usual 20.0%)"
    loud = quarantine_check({GUEST: 410}, 1_000, recent)
    assert (loud.success, loud.severity, loud.unexpected_count) == (False, "warning", 410)
    assert loud.observed == f"{GUEST}: 41.0% (usual 20.0%)"


def test_a_new_reason_warns_unless_it_is_a_handful_of_rows():
    recent = [recorded(10_000, {GUEST: 2_000})] * 3
    assert quarantine_check({GUEST: 2_000, "unit_price is negative": 5}, 10_000, recent).success  # 0.05%
    new = quarantine_check({GUEST: 2_000, "unit_price is negative": 50}, 10_000, recent)
    assert not new.success and new.observed == "unit_price is negative: 0.5% (usual 0.0%)"
    assert new.unexpected_count == 50


def test_without_recent_loads_any_quarantined_row_warns_and_none_says_nothing():
    first = quarantine_check({GUEST: 1}, 1_000, [])
    assert not first.success and first.observed.endswith("(no recent loads to compare with)")
    # loads logged before their reasons were recorded are no history for this check
    assert not quarantine_check({GUEST: 200}, 1_000, [recorded(1_000, None)]).success
    assert quarantine_check({}, 1_000, [recorded(1_000, {GUEST: 200})]) is None


def quarantine_verdict(staged):
    [check] = [c for c in staged.report.checks if c.expectation == QUARANTINE_EXPECTATION]
    return check


@pytest.mark.skipif(not BUNDLED.exists(), reason=f"{BUNDLED} is not in this checkout")
def test_online_retail_weeks_warn_only_in_the_week_with_over_twice_the_usual_guest_share(tmp_path):
    """Real data: Online Retail landed through 2011-07-24, then week by week. Every load quarantines 5-47%
    of its lines for a missing customer id; before, each was reported as "warnings". Five ordinary weeks pass;
    the week of 2011-08-29 (46.8% of its lines, against a usual 16.8% after two thin weeks) warns."""
    con = duckdb.connect()
    sink = DuckDBRawSink(con)

    def week_of(start: str, end: str):
        path = tmp_path / f"{start}.parquet"
        duckdb.sql(f"copy (select * from read_parquet('{BUNDLED}') where InvoiceDate >= '{start}' "
                   f"and InvoiceDate < '{end}') to '{path}' (format parquet)")
        return stage_file(con, "orders", str(path))

    backfill = week_of("2010-12-10", "2011-07-25")
    assert backfill.report.status == "warnings" and not quarantine_verdict(backfill).success
    land_staged(con, sink, [backfill])
    recorded_reasons = con.execute("select quarantined_by_reason from raw.loads").fetchall()[0][0]
    assert json.loads(recorded_reasons) == backfill.report.quarantined
    for start, end in (("2011-07-25", "2011-08-01"), ("2011-08-01", "2011-08-08"), ("2011-08-08", "2011-08-15"),
                       ("2011-08-15", "2011-08-22"), ("2011-08-22", "2011-08-29")):
        week = week_of(start, end)
        assert week.report.quarantined[GUEST] > 0
        assert quarantine_verdict(week).success and week.report.status == "passed", (start, week.report.checks)
        land_staged(con, sink, [week])
    unusual = week_of("2011-08-29", "2011-09-05")
    check = quarantine_verdict(unusual)
    assert (check.success, check.observed) == (False, f"{GUEST}: 46.8% (usual 16.8%)")
    assert unusual.report.status == "warnings"


def test_the_bundled_datas_first_load_compares_with_its_known_guest_checkouts():
    """`make run`'s first load has no recent loads: the bundled Online Retail II's 22.5% guest checkouts are
    known, so they stay quiet; three times that would still warn; a shop's own first load warns as before."""
    from clv.ingest.validation import known_quarantine_shares

    known = known_quarantine_shares(f"orders: {BUNDLED} (1 files)")
    assert known == {GUEST: 0.225}
    quiet = quarantine_check({GUEST: 235_287}, 1_044_847, [], known)
    assert quiet.success and "the bundled data's known shares" in quiet.observed
    assert not quarantine_check({GUEST: 700_000}, 1_044_847, [], known).success
    shop = known_quarantine_shares("orders: /srv/exports/orders.parquet (1 files)")
    assert shop is None and not quarantine_check({GUEST: 235_287}, 1_044_847, [], shop).success
