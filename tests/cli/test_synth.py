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


@pytest.fixture(scope="module")
def seasonal_shop(tmp_path_factory):
    """The seasonal, growing shop of `clv synth --shop seasonal-growing`, simulated a year past its period."""
    from clv.synth import SHOP_PROFILES

    config = SynthConfig(customers=6000, seed=3, start=date(2024, 4, 1), future_days=365,
                         **SHOP_PROFILES["seasonal-growing"])
    return config, write_synthetic(config, tmp_path_factory.mktemp("seasonal"), latent=True)


def test_the_seasonal_growing_shop_has_its_peak_its_surge_and_its_untracked_browsers(seasonal_shop):
    config, paths = seasonal_shop
    end = pd.Timestamp(config.start) + pd.Timedelta(days=config.days)
    orders, future = pd.read_parquet(paths["orders"]), pd.read_parquet(paths["future_orders"])
    customers, events = pd.read_parquet(paths["customers"]), pd.read_parquet(paths["events"])
    assert orders["order_ts"].max() < end <= future["order_ts"].min()  # the future stays out of the exports
    assert events["event_ts"].max() < end
    # purchases per customer already acquired: November-December about three times the rest of the year
    purchases = pd.concat([orders, future]).query("quantity > 0").drop_duplicates("order_id")
    month = purchases["order_ts"].dt.to_period("M")
    per_month = purchases.groupby(month).size()
    signups = customers["signup_ts"].dt.to_period("M").value_counts().sort_index().cumsum()
    rate = (per_month / signups.reindex(per_month.index, method="ffill")).loc["2025-07":"2026-02"]
    peak, rest = rate[rate.index.month >= 11].mean(), rate[rate.index.month < 11].mean()
    assert 2.0 < peak / rest < 4.0, rate
    recent = (customers["signup_ts"] >= end - pd.Timedelta(days=config.surge_days)).mean()
    assert 0.37 < recent < 0.43  # 40% acquired in the last six months
    assert 0.72 < events["customer_id"].nunique() / len(customers) < 0.78  # browsing tracked for three quarters


def test_the_oracle_and_the_bayes_ceiling_read_the_seasonal_clock(seasonal_shop):
    """A year after the period, what the customers really spent against the oracle's and the Bayes
    ceiling's expectation (both on the shop's seasonal clock): calibrated; on calendar days (amplitude 0)
    the Bayes ceiling is further off."""
    from clv.synth import bayes_ceiling_expected_revenue, oracle_expected_revenue

    config, paths = seasonal_shop
    cutoff = (pd.Timestamp(config.start) + pd.Timedelta(days=config.days - 1)).date()
    orders, future = pd.read_parquet(paths["orders"]), pd.read_parquet(paths["future_orders"])
    customers, events = pd.read_parquet(paths["customers"]), pd.read_parquet(paths["events"])
    ids = orders["customer_id"].astype(str).unique()
    actual = (future.assign(value=future["quantity"] * future["unit_price"]).groupby("customer_id")["value"].sum()
              .reindex(ids).fillna(0).to_numpy())
    clock = {"start": config.start, "season_amplitude": config.season_amplitude}
    oracle = oracle_expected_revenue(pd.read_parquet(paths["latent"]), orders, ids, cutoff, 365, **clock)
    assert oracle.sum() / actual.sum() == pytest.approx(1.0, abs=0.08)
    ceiling = bayes_ceiling_expected_revenue(orders, events, customers, ids, cutoff, 365, draws=2000, **clock)
    assert ceiling.sum() / actual.sum() == pytest.approx(1.0, abs=0.12)
    calendar = bayes_ceiling_expected_revenue(orders, events, customers, ids, cutoff, 365, draws=2000,
                                              start=config.start, season_amplitude=0.0)
    assert abs(calendar.sum() / actual.sum() - 1) > abs(ceiling.sum() / actual.sum() - 1)
