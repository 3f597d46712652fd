"""The synthetic shop: reproducible, conforms to the input contract, follows its documented process."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from clv.ingest.landing import land_file
from clv.synth import SynthConfig, write_synthetic

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return write_synthetic(SynthConfig(customers=3000, seed=11, start=date(2023, 1, 1), days=365), out)


def test_same_seed_same_data(shop, tmp_path):
    again = write_synthetic(SynthConfig(customers=3000, seed=11, start=date(2023, 1, 1), days=365), tmp_path)
    for name in ("customers", "orders", "events"):
        pd.testing.assert_frame_equal(pd.read_parquet(shop[name]), pd.read_parquet(again[name]))


def test_every_file_lands_under_the_contract(shop):
    con = duckdb.connect()
    for entity in ("customers", "orders", "events"):
        [result] = land_file(con, entity, shop[entity])
        assert result.rows_inserted == result.rows_read > 0 and result.adapter is None


def test_process_properties(shop):
    customers = pd.read_parquet(shop["customers"])
    orders = pd.read_parquet(shop["orders"])
    events = pd.read_parquet(shop["events"])
    assert customers["customer_id"].is_unique and len(customers) == 3000
    assert set(customers["acquisition_channel"]) == {"organic", "paid_search", "social", "email", "referral"}
    assert customers["email"].str.endswith("@example.com").all()
    # every customer buys on sign-up day; nothing happens outside the period
    first = orders[orders["quantity"] > 0].groupby("customer_id")["order_ts"].min().dt.normalize()
    signup = customers.set_index("customer_id")["signup_ts"].dt.normalize()
    assert (first == signup.loc[first.index]).all() and len(first) == 3000
    assert orders["order_ts"].max() < pd.Timestamp("2024-01-01") and events["event_ts"].max() < pd.Timestamp("2024-01-02")
    # returns are negative lines of R orders, about 4% of orders
    returns = orders[orders["quantity"] < 0]
    assert returns["order_id"].str.startswith("R").all()
    assert 0.02 < returns["order_id"].nunique() / orders["order_id"].nunique() < 0.06
    assert set(events["event_type"]) == {"session_start", "page_view", "add_to_cart", "purchase"}
    # one purchase event per order
    assert (events["event_type"] == "purchase").sum() == orders.loc[orders["quantity"] > 0, "order_id"].nunique()


def test_browsing_tracks_buying(shop):
    """The latent rate drives both: customers with more sessions buy more often."""
    orders = pd.read_parquet(shop["orders"])
    events = pd.read_parquet(shop["events"])
    n_orders = orders[orders["quantity"] > 0].groupby("customer_id")["order_id"].nunique()
    n_sessions = events.groupby("customer_id")["session_id"].nunique()
    assert n_orders.corr(n_sessions.reindex(n_orders.index).fillna(0), method="spearman") > 0.5

