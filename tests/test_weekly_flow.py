"""The weekly flow end to end on real Online Retail II data and on a synthetic shop, under a temporary
Prefect server: what it serves, what it decides, and what a re-run changes (nothing)."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from clv.cli import main
from clv.ingest.validation import InputValidationError
from flows.weekly import format_summary, weekly_clv_pipeline
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


def test_weekly_flow_on_online_retail_serves_last_years_spend_when_the_model_loses(prefect_server, clv_home,
                                                                                   retail_sample, tmp_path):
    """On a 1-in-12 sample of Online Retail II (about 480 customers) the model does not beat last year's
    spend on the strict backtest: it is registered, not served, and every customer is scored by last
    year's spend, named as such. Re-runs change nothing."""
    warehouse = clv_home / "warehouse" / "clv.duckdb"
    first = weekly_clv_pipeline(orders=str(retail_sample))
    expected = customers_known_at_last_order_date(retail_sample)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = con.execute("select * from clv_scores").df()
        raw_rows = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    assert set(scores["customer_id"]) == expected and len(scores) == len(expected)
    decision = first["decision"]
    assert decision["version"] == "1" and decision["outcome"] == "not_served"
    assert "beats_baseline" in decision["reason"]
    assert registry.champion_version("clv_xgboost") is None
    assert scores["model_name"].eq("last_period").all() and scores["model_version"].eq("baseline").all()
    assert scores["top_reasons"].str.startswith("spent ").all()
    assert scores["top_reasons"].str.endswith("is served: no model has passed the gates yet").all()
    assert "NOT served" in format_summary(first)
    assert (scores["predicted_clv_12m"] >= 0).all()
    assert set(scores["clv_tier"]) == {"low", "medium", "high"}
    assert scores["p_alive"].dropna().between(0, 1).all() and (scores["expected_orders_12m"].dropna() >= 0).all()
    assert str(scores["cutoff_date"].iloc[0].date()) == first["cutoff"] == "2011-12-09"
    backtest = decision["backtest"]  # Online Retail is too short for 365 days: 180, strictly, and said so
    assert backtest["horizon_days"] == 180 and len(backtest["origins"]) == 3 and "too short" in backtest["note"]
    published = pd.read_parquet(retail_sample)
    assert raw_rows == published["Customer ID"].notna().sum()  # lines without a customer are quarantined
    assert first["loads"][0]["rows_quarantined"] == published["Customer ID"].isna().sum()
    reports = sorted((clv_home / "reports").glob("validation-*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())[0]["status"] == "warnings"

    # a re-run on unchanged data: still no champion, so it trains again, and finds version 1 was trained
    # with this configuration on exactly these snapshots: "no change", no new version, no failed gate
    second = weekly_clv_pipeline(orders=str(retail_sample))
    assert second["decision"]["outcome"] == "no_change" and not second["decision"]["gates"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.orders").fetchall()[0][0] == raw_rows
        history = con.execute("select count(*), count(distinct customer_id) from clv_scores_history").fetchall()[0]
    assert history == (len(expected), len(expected))  # the same week twice: one set of rows
    assert [str(v.version) for v in MlflowClient().search_model_versions("name = 'clv_xgboost'")] == ["1"]

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


def shop_run(shop, **options):
    return weekly_clv_pipeline(orders=str(shop["orders"]), customers=str(shop["customers"]),
                               events=str(shop["events"]), **options)


def test_champion_on_a_synthetic_shop_and_reruns_that_change_nothing(prefect_server, clv_home, synthetic_shop):
    first = shop_run(synthetic_shop)
    decision = first["decision"]
    assert decision["outcome"] == "champion", decision["gates"]
    gates = {g["gate"]: g for g in decision["gates"]}
    assert gates["beats_baseline"]["passed"] and "better on MAE" in gates["beats_baseline"]["detail"]
    assert {"fairness_country", "fairness_acquisition_channel", "calibration"} <= set(gates)
    warehouse = clv_home / "warehouse" / "clv.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = con.execute("select * from clv_scores").df()
    assert scores["model_version"].eq("1").all() and scores["model_name"].eq("clv_xgboost").all()
    assert scores["top_reasons"].str.count("; ").eq(2).all()  # three reasons in words, in currency
    assert scores["top_reasons"].str.contains("spent [0-9,]+ in the last year", regex=True).mean() > 0.5
    structured = scores["reason_contributions"].map(json.loads)
    assert structured.map(len).eq(3).all()
    assert (structured.str[0].str["feature"] == "last_year_spend").mean() > 0.3
    high = scores[scores["clv_tier"] == "high"]
    assert high["predicted_clv_12m"].min() >= scores[scores["clv_tier"] != "high"]["predicted_clv_12m"].max()

    tables = latest_table_artifacts("clv-gates-table", "clv-backtest", "clv-score-tiers")
    assert [row["gate"] for row in tables["clv-gates-table"]] == [g["gate"] for g in decision["gates"]]
    assert {row["model"] for row in tables["clv-backtest"]} >= {"last_period"}
    assert all("[" in row["MAE"] for row in tables["clv-backtest"])  # every metric with its interval
    tiers = {row["tier"]: row for row in tables["clv-score-tiers"]}
    assert sum(tiers[t]["customers"] for t in ("high", "medium", "low")) == len(scores)
    assert tiers["high"]["share_of_value"] > tiers["low"]["share_of_value"]
    assert "top 10% of customers" in tiers

    second = shop_run(synthetic_shop)  # unchanged data: a champion serves, nothing is trained
    assert second["decision"] is None and second["model_version"] == "1"
    third = shop_run(synthetic_shop, retrain=True)  # asked to retrain on the same data: "no change"
    assert third["decision"]["outcome"] == "no_change" and third["decision"]["version"] == "1"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        history = con.execute("select count(*), count(distinct customer_id) from clv_scores_history").fetchall()[0]
    assert history == (len(scores), len(scores))
    assert [str(v.version) for v in MlflowClient().search_model_versions("name = 'clv_xgboost'")] == ["1"]
    assert registry.champion_version("clv_xgboost", "challenger") is None
    assert main(["shadow"]) == 0  # nothing to compare: skipped, not failed
    tags = MlflowClient().get_model_version("clv_xgboost", "1").tags
    assert tags["gates"] == "pass" and tags["gate_outcome"] == "champion"


def latest_table_artifacts(*keys: str) -> dict[str, list[dict]]:
    """The latest table artifact of each key, as the Prefect UI shows it (rows as dicts)."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))),
                                      sort=ArtifactSort.CREATED_DESC)
    latest = {}
    for artifact in found:
        if artifact.key not in latest:
            data = artifact.data
            latest[artifact.key] = json.loads(data) if isinstance(data, str) else data
    assert set(latest) == set(keys), set(keys) - set(latest)
    return latest


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


def test_a_version_passing_every_gate_becomes_challenger(prefect_server, clv_home, synthetic_shop):
    shop_run(synthetic_shop)
    other = {"type": "xgboost_offset", "params": {"max_depth": 2, "n_estimators": 200}}
    second = shop_run(synthetic_shop, retrain=True, model_spec=other)
    decision = second["decision"]
    assert decision["version"] == "2" and not decision["same_configuration_as_champion"]
    gates = {g["gate"]: g for g in decision["gates"]}
    # the champion's configuration was refit on the same cutoffs and scored on the same rows
    assert "champion" in decision["backtest"]["metrics"] and "vs champion" in gates["beats_champion"]["detail"]
    assert decision["outcome"] == ("challenger" if decision["passed"] else "rejected")
    assert decision["outcome"] == "challenger", decision["gates"]
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


def test_deployed_runs_need_the_teams_inputs_and_never_land_the_demo_data(prefect_server, clv_home, tmp_path):
    from clv.settings import SettingsError

    with pytest.raises(SettingsError, match="no inputs"):
        weekly_clv_pipeline()  # what a scheduled run without a settings file would do
    with pytest.raises(SettingsError, match="not found"):
        weekly_clv_pipeline(settings_file=str(tmp_path / "clv-settings.yml"))
    with pytest.raises(SettingsError, match="unknown option"):
        (tmp_path / "typo.yml").write_text("sourcez: x.yml\n")
        weekly_clv_pipeline(settings_file=str(tmp_path / "typo.yml"))
    assert not (clv_home / "warehouse" / "clv.duckdb").exists()  # nothing landed


def test_every_deployment_takes_the_settings_file_and_retrain_is_triggered_by_events():
    import yaml

    from clv.config import REPO_ROOT

    spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"weekly", "monitor", "retrain", "shadow"}
    for name, deployment in deployments.items():
        assert deployment["parameters"]["settings_file"] == "clv-settings.yml", name
        assert "demo" not in deployment["parameters"]
    retrain = deployments["retrain"]
    assert retrain["entrypoint"] == "flows/retrain.py:retrain_flow"
    triggers = [t for d in deployments.values() for t in d.get("triggers", [])]
    assert len(triggers) == 4 and all(t.get("name") and t.get("description") for t in triggers)
    events = {t["expect"][0]: t["parameters"] for t in retrain["triggers"]}
    assert events == {"clv.drift.detected": {"settings_file": "clv-settings.yml", "reason": "clv.drift.detected"},
                      "clv.performance.degraded": {"settings_file": "clv-settings.yml",
                                                   "reason": "clv.performance.degraded"}}
