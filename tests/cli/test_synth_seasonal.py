"""The seasonal, growing synthetic shop (`clv synth --shop seasonal-growing`): its peak, its surge, its
untracked browsers, and ceilings that read its seasonal clock. Not in the daily loop: the Bayes ceiling
over 6,000 customers takes half a minute."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from clv.synth import SynthConfig, write_synthetic


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
