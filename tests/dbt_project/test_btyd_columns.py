"""BTYD columns of customer_features equal lifetimes' summary_data_from_transaction_data (daily periods),
on the CDNOW sample and on Online Retail II; plus features of a few Online Retail II customers computed
independently with pandas."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from clv.config import BUNDLED_DATA_DIR, BUNDLED_ORDERS
from clv.ingest.landing import land_file
from clv.transform import dbt_vars, run_dbt

CDNOW_SAMPLE = BUNDLED_DATA_DIR / "cdnow" / "cdnow_sample.parquet"


def build_features(home, orders_path, cutoff) -> pd.DataFrame:
    """Land, build with the cap off (lifetimes has no cap), return features at the cutoff."""
    warehouse = home / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, "orders", orders_path)
    run_dbt(["build"], warehouse=warehouse,
            variables=dbt_vars(cutoff=cutoff, order_value_cap_percentile=None))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select * from customer_features where cutoff_date = ?", [cutoff]).df() \
            .set_index("customer_id").sort_index()


def assert_btyd_equal(features: pd.DataFrame, transactions: pd.DataFrame, cutoff: str) -> None:
    expected = summary_data_from_transaction_data(
        transactions, "customer_id", "date", monetary_value_col="value", observation_period_end=cutoff, freq="D"
    ).sort_index()
    assert list(features.index) == list(expected.index)
    np.testing.assert_array_equal(features["btyd_frequency"], expected["frequency"])
    np.testing.assert_array_equal(features["btyd_recency"], expected["recency"])
    np.testing.assert_array_equal(features["btyd_t"], expected["T"])
    np.testing.assert_allclose(features["btyd_monetary_value"], expected["monetary_value"], rtol=1e-9, atol=1e-9)


def test_btyd_columns_match_lifetimes_on_cdnow(clv_home, tmp_path):
    raw = pd.read_parquet(CDNOW_SAMPLE)
    orders = pd.DataFrame({
        "customer_id": raw["sample_id"], "order_id": [f"t{i}" for i in range(len(raw))],
        "order_ts": pd.to_datetime(raw["date"], format="%Y%m%d"), "quantity": 1, "unit_price": raw["dollar_value"],
    })
    path = tmp_path / "cdnow.parquet"
    orders.to_parquet(path, index=False)
    features = build_features(clv_home, path, "1997-09-30")
    bought = orders[orders["unit_price"] > 0]
    transactions = pd.DataFrame({"customer_id": bought["customer_id"], "date": bought["order_ts"],
                                 "value": bought["unit_price"]})
    # 8 of the 2,357 sample customers have only $0 purchases before the cutoff: no purchase, no row
    assert orders["customer_id"].nunique() == 2357 and len(features) == bought["customer_id"].nunique() == 2349
    assert_btyd_equal(features, transactions, "1997-09-30")


@pytest.fixture(scope="module")
def retail_features(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("retail-full")
    os.environ["CLV_HOME"] = str(home)
    return build_features(home, BUNDLED_ORDERS, "2010-12-09")


@pytest.fixture(scope="module")
def retail_lines() -> pd.DataFrame:
    raw = pd.read_parquet(BUNDLED_ORDERS)
    raw = raw[raw["Customer ID"].notna() & (raw["InvoiceDate"] < "2010-12-10")].copy()
    raw["customer_id"] = raw["Customer ID"].astype(int).astype(str)
    raw["value"] = np.where(raw["Price"] > 0, raw["Quantity"] * raw["Price"], 0.0)
    raw["date"] = raw["InvoiceDate"].dt.normalize()
    return raw


def test_btyd_columns_match_lifetimes_on_online_retail(retail_features, retail_lines):
    bought = retail_lines[(retail_lines["Quantity"] > 0) & (retail_lines["value"] > 0)]
    assert_btyd_equal(retail_features, bought[["customer_id", "date", "value"]], "2010-12-09")


@pytest.mark.parametrize("customer", ["12346", "13085", "14911", "17850"])
def test_online_retail_features_match_pandas(retail_features, retail_lines, customer):
    lines = retail_lines[retail_lines["customer_id"] == customer]
    cutoff = pd.Timestamp("2010-12-09")
    purchases = lines[(lines["Quantity"] > 0) & (lines["value"] > 0)]
    returns = lines[lines["Quantity"] < 0]
    last_90 = lines[lines["date"] > cutoff - pd.Timedelta(days=90)]
    row = retail_features.loc[customer]
    assert row["days_since_last_order"] == (cutoff - purchases["date"].max()).days
    assert row["orders_count"] == purchases["Invoice"].nunique()
    assert row["revenue_total"] == pytest.approx(purchases["value"].sum() + returns["value"].sum())
    assert row["revenue_sum_90d"] == pytest.approx(last_90["value"].sum())
    assert row["distinct_products_count"] == purchases["StockCode"].nunique()
    assert row["tenure_days"] == (cutoff - purchases["date"].min()).days


def test_bgnbd_gg_components_are_finite_on_heavy_tailed_retail(retail_features):
    """Online Retail's spend is so heavy-tailed that Gamma-Gamma's q falls below 1 and lifetimes'
    expectations overflow for the biggest buyers: the model must still give usable numbers."""
    from models_ml.btyd import BgNbdGammaGamma

    components = BgNbdGammaGamma(horizon_days=365).components(retail_features.reset_index())
    assert np.isfinite(components.to_numpy()).all()
    assert components["p_alive"].between(0, 1).all()
    assert (components["expected_orders"] >= 0).all() and (components["expected_order_value"] > 0).all()
