"""The weekly flow end to end on real Online Retail II data, under a temporary Prefect server."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from clv.cli import main
from clv.validation import InputValidationError
from flows.weekly import weekly_clv_pipeline
from mlflow.tracking import MlflowClient

from models_ml import registry

pytestmark = pytest.mark.slow


def customers_known_at_last_order_date(path) -> set[str]:
    """Independent of dbt: customers with a priced purchase line on or before the last order date."""
    raw = pd.read_parquet(path)
    raw = raw[raw["Customer ID"].notna()]
    cutoff = raw["InvoiceDate"].dt.date.max()
    bought = raw[(raw["Quantity"] > 0) & (raw["Price"] > 0) & (raw["InvoiceDate"].dt.date <= cutoff)]
    return set(bought["Customer ID"].astype(int).astype(str))


def test_weekly_flow_scores_every_known_customer_and_is_idempotent(prefect_server, clv_home, retail_sample,
                                                                   tmp_path):
    warehouse = clv_home / "warehouse" / "clv.duckdb"
    first = weekly_clv_pipeline(orders=str(retail_sample))
    expected = customers_known_at_last_order_date(retail_sample)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = con.execute("select * from clv_scores").df()
        raw_rows = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    assert set(scores["customer_id"]) == expected and len(scores) == len(expected)
    assert scores["model_version"].eq("1").all() and scores["model_name"].eq("clv_xgboost").all()
    assert (scores["predicted_clv_12m"] >= 0).all()
    assert set(scores["clv_tier"]) == {"low", "medium", "high"}
    assert scores["p_alive"].between(0, 1).all() and (scores["expected_orders_12m"] >= 0).all()
    assert scores["top_reasons"].str.count(r"\(") .eq(3).all()
    # the high tier is the top 20% of predicted value
    high = scores[scores["clv_tier"] == "high"]
    assert high["predicted_clv_12m"].min() >= scores[scores["clv_tier"] != "high"]["predicted_clv_12m"].max()
    assert str(scores["cutoff_date"].iloc[0].date()) == first["cutoff"] == "2011-12-09"
    assert first["customers_scored"] == len(expected) and first["trained_is_champion"]
    assert {"mae", "rmse", "normalized_gini", "spearman", "top10_capture"} <= set(first["holdout_metrics"])
    published = pd.read_parquet(retail_sample)
    assert raw_rows == published["Customer ID"].notna().sum()  # lines without a customer are quarantined
    assert first["loads"][0]["rows_quarantined"] == published["Customer ID"].isna().sum()
    reports = sorted((clv_home / "reports").glob("validation-*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())[0]["status"] == "warnings"

    second = weekly_clv_pipeline(orders=str(retail_sample))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.orders").fetchall()[0][0] == raw_rows
        customer_ids = pd.read_parquet(retail_sample)["Customer ID"].nunique()
        assert con.execute("select count(*), count(distinct customer_id) from raw.customers").fetchall()[0] == (
            customer_ids, customer_ids)
        rescored = con.execute("select model_version, count(*) from clv_scores group by 1").fetchall()
        history = con.execute("select count(*) from clv_scores_history").fetchall()[0][0]
    assert second["trained_version"] == "2" and not second["trained_is_champion"]
    # the champion was fit on the holdout rows as well, so a retrain on the same data cannot beat it
    assert second["gates"]["evaluated"] and not second["gates"]["passed"]
    gates = {g["gate"]: g for g in second["gates"]["gates"]}
    assert not gates["beats_champion"]["passed"] and gates["prediction_sanity"]["passed"]
    assert registry.champion_version("clv_xgboost", "challenger") is None
    assert main(["shadow"]) == 0  # nothing to compare: skipped, not failed
    tags = MlflowClient().get_model_version("clv_xgboost", "2").tags
    assert tags["gates"] == "fail" and tags["gate_beats_champion"] == "fail"
    assert rescored == [("1", len(expected))]  # scored by the champion, still version 1
    assert history == 2 * len(expected)
    assert registry.champion_version("clv_xgboost") == "1"

    # A bad export (prices in cents) halts the run at the validation gate: nothing landed, dbt not run,
    # the scores BI reads unchanged, and the report names the rule.
    cents = tmp_path / "cents.parquet"
    published.assign(Price=published["Price"] * 100).to_parquet(cents, index=False)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        before = [con.execute(sql).fetchall() for sql in GATE_WATCHED]
    with pytest.raises(InputValidationError, match="median line value"):
        weekly_clv_pipeline(orders=str(cents))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert [con.execute(sql).fetchall() for sql in GATE_WATCHED] == before
    latest = sorted((clv_home / "reports").glob("validation-*.md"))[-1].read_text()
    assert "**failed**" in latest and "expect_column_median_to_be_between" in latest


GATE_WATCHED = [
    "select count(*) from raw.orders", "select count(*) from raw.quarantine", "select count(*) from raw.loads",
    "select * from clv_scores order by customer_id", "select * from int_cutoffs order by cutoff_date",
    "select count(*) from customer_features",
]


def test_cli_reports_a_missing_column_and_keeps_scores(prefect_server, clv_home, tmp_path, capsys):
    bad = tmp_path / "orders.csv"
    pd.DataFrame({"customer_id": ["1"], "order_id": ["o1"], "quantity": [1], "unit_price": [2.0]}).to_csv(bad, index=False)
    assert main(["run", "--orders", str(bad)]) == 1
    error = capsys.readouterr().err
    assert "missing required column(s) order_ts" in error and "orders.csv" in error


def test_a_version_passing_every_gate_becomes_challenger(prefect_server, clv_home, retail_sample):
    weekly_clv_pipeline(orders=str(retail_sample))
    relaxed = {"require_beating_champion": False, "gini_floor": 0.0, "disparate_impact_min": 0.0}
    second = weekly_clv_pipeline(orders=str(retail_sample), gate_config=relaxed)
    assert second["gates"]["passed"]
    assert registry.champion_version("clv_xgboost", "challenger") == "2"
    assert registry.champion_version("clv_xgboost") == "1"

    assert main(["shadow"]) == 0  # same data: the challenger's mean stays within 15%
    with duckdb.connect(str(clv_home / "warehouse" / "clv.duckdb"), read_only=True) as con:
        run = con.execute("select champion_version, challenger_version, customers, mean_shift, spearman, passed "
                          "from shadow_runs").df()
        per_customer = con.execute("select count(*) from shadow_scores").fetchall()[0][0]
    assert run[["champion_version", "challenger_version"]].values.tolist() == [["1", "2"]]
    assert run["passed"].item() and run["mean_shift"].item() < 0.15 and run["spearman"].item() > 0.8
    assert per_customer == run["customers"].item() == second["customers_scored"]

    assert main(["segments", "--kind", "canary", "--size", "100"]) == 0
    assert main(["segments", "--kind", "ab", "--seed", "5"]) == 0
    with duckdb.connect(str(clv_home / "warehouse" / "clv.duckdb"), read_only=True) as con:
        canary = con.execute("select chosen_by, model_version, count(*) from campaign_canary group by 1, 2 order by 1").fetchall()
        ab = con.execute("select arm, model_version, count(*) from campaign_ab group by 1, 2 order by 1").df()
    assert canary == [("challenger", "2", 5), ("champion", "1", 95)]
    assert ab["model_version"].tolist() == ["1", "2"] and ab["count_star()"].sum() == second["customers_scored"]
