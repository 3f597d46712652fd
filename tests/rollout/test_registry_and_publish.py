"""MLflow registration and the champion alias (real SQLite store), and atomic score publishing."""

from __future__ import annotations

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from clv import config
from clv.warehouse import score_contract
from clv.warehouse.score_contract import ScoreContractError
from clv.warehouse.embedded import publish_scores
from models_ml import registry
from clv.rollout.model_decisions import decide
from models_ml.training import train_and_evaluate
from tests.models_ml.test_models import plan, synthetic_snapshots


@pytest.fixture
def store(clv_home):
    config.use_project_tracking_store()
    return clv_home


def train(n=300):
    data = synthetic_snapshots(n)
    return data, train_and_evaluate(data, plan(), resamples=30)


def test_registration_logs_the_backtest_and_leaves_aliases_to_the_gates(store):
    data, result = train()
    first = registry.log_and_register(result, data, "clv_test", {"scoring_cutoff": "2024-01-31"},
                                      scoring_population=data[data["cutoff_date"] == data["cutoff_date"].max()])
    assert registry.champion_version("clv_test") is None  # registering alone makes nobody champion
    decision = decide(result, first, None)
    assert decision["outcome"] == "champion" and registry.champion_version("clv_test") == "1"
    second = registry.log_and_register(result, data, "clv_test", {"scoring_cutoff": "2024-02-07"})
    assert second.version == "2" and registry.champion_version("clv_test") == "1"

    run = MlflowClient().get_run(first.run_id)
    assert run.data.metrics["backtest_normalized_gini"] == pytest.approx(result.holdout_metrics["normalized_gini"])
    assert run.data.params["backtest_origins"] == ",".join(result.backtest.origins)
    assert len(run.data.tags["training_data_hash"]) == 16
    assert run.data.tags["git_commit"] != ""
    artifacts = {a.path for a in MlflowClient().list_artifacts(first.run_id)}
    assert {"model_card.md", "plots", "feature_columns.json", "backtest.json", "gates.json", "baseline"} <= artifacts
    card = mlflow.artifacts.load_text(f"runs:/{first.run_id}/model_card.md")
    assert "## Intended use" in card and "strict rolling-origin backtest" in card and "## Limitations" in card
    # performance as a markdown table: a header row, a rule with right-aligned numbers, each model's mean over
    # the origins and every origin's own values, the candidate first, last year's spend among the rest
    table = [line for line in card.splitlines() if line.startswith("|")]
    assert table[0] == ("| model | origin | Poisson deviance | normalized Gini | calibration | decile calibration error "
                        "| MAE |") and table[1] == "|---|---|---:|---:|---:|---:|---:|"
    assert table[2].startswith("| clv_test (") and "| mean |" in table[2]
    assert f"{result.holdout_metrics['normalized_gini']:,.3f}" in table[2]
    assert any(row.startswith("| last_period | mean |") for row in table)
    assert sum(row.startswith("| clv_test (") for row in table) == 1 + len(result.backtest.origins)
    assert "type chosen:" in card and "fallback (served while no trained model passes):" in card
    # the same configuration on the same rows is found again (a re-run registers nothing): version 1, gated;
    # version 2 was never gated, so it does not count (test_a_version_killed_before_its_gates_...)
    assert registry.find_version("clv_test", registry.data_fingerprint(data), result.spec) == "1"
    assert registry.find_version("clv_test", registry.data_fingerprint(data.head(10)), result.spec) is None
    plots = {a.path for a in MlflowClient().list_artifacts(first.run_id, "plots")}
    assert plots == {"plots/lorenz.svg", "plots/deciles.svg", "plots/calibration.svg", "plots/shap_summary.svg",
                     "plots/coverage_by_decile.svg", "plots/base_forecast.svg"}
    # the predictive distribution scoring will publish, and how it held out of time
    distribution = mlflow.artifacts.load_dict(f"runs:/{first.run_id}/predictive_distribution.json")
    assert distribution["spread"]["horizon_days"] == result.backtest.horizon_days
    assert registry.predictive_record("clv_test", "1")["checked"] == distribution["checked"]
    assert 0 < run.data.metrics["backtest_interval_coverage_80"] <= 1
    assert "## How sure (the 80% interval, checked out of time)" in card
    # MLflow as its users expect it: a tabular model-development experiment (not the GenAI pages) and no stray
    # Default, a run name that tells configurations apart, a description, the training data as the run's input
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert [e.name for e in MlflowClient().search_experiments()] == ["clv-weekly"]
    assert run.info.run_name.startswith(f"{result.spec['type']}-") and "2024-01-31" in run.info.run_name
    other = registry.run_name({**result.spec, "params": {"max_depth": 2}}, "2024-01-31", "f" * 16)
    assert other != registry.run_name(result.spec, "2024-01-31", "f" * 16)
    assert "trained on" in run.data.tags["mlflow.note.content"]
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "customer_training_set" and dataset.tags[0].value == "training"
    shap_svg = mlflow.artifacts.load_text(f"runs:/{first.run_id}/plots/shap_summary.svg")
    top_input = result.model.explain(data[data["cutoff_date"] == data["cutoff_date"].max()]).abs().mean().idxmax()
    assert shap_svg.startswith("<svg") and top_input in shap_svg  # the strongest input is on the chart
    info = mlflow.models.get_model_info("models:/clv_test/1")
    assert info.signature.inputs.input_names() == result.model.required_columns()

    model, version, columns = registry.load_model_by_alias("clv_test")
    assert version == "1" and columns == result.model.required_columns()
    np.testing.assert_allclose(model.predict(data.head(3)), result.model.predict(data.head(3)), rtol=1e-6)
    served = mlflow.pyfunc.load_model("models:/clv_test@champion").predict(data[columns].head(3).astype(float))
    np.testing.assert_allclose(np.asarray(served), result.model.predict(data.head(3)), rtol=1e-6)


def test_loading_without_champion_is_a_clear_error(store):
    with pytest.raises(LookupError, match="has no 'champion' alias"):
        registry.load_model_by_alias("never_trained")


def scores(version: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [str(i) for i in range(n)], "cutoff_date": pd.Timestamp("2024-01-01").date(),
                         "predicted_clv_12m": np.arange(n, dtype=float), "clv_tier": "low", "model_name": "m",
                         "model_version": version, "scored_at": pd.Timestamp("2024-01-02")})


def test_publish_replaces_scores_and_keeps_history(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores("1"))
        publish_scores(con, scores("2", n=2))
        assert con.execute("select model_version, count(*) from clv_scores group by 1").fetchall() == [("2", 2)]
        assert con.execute("select count(*) from clv_scores_history").fetchall()[0][0] == 5


def test_scoring_the_same_cutoff_with_the_same_version_again_adds_no_history_rows(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores("1"))
        publish_scores(con, scores("1").assign(predicted_clv_12m=7.0))  # a re-run of the same week
        rows = con.execute("select model_version, count(*), max(predicted_clv_12m) from clv_scores_history "
                           "group by 1").fetchall()
        assert rows == [("1", 3, 7.0)]  # replaced by the re-run's rows, not appended


def test_failed_publish_leaves_previous_scores_readable(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores("1"))
        con.execute("alter table clv_scores_history alter predicted_clv_12m type date using null")  # broken by hand
        with pytest.raises(duckdb.Error):
            publish_scores(con, scores("2"))  # the history append fails inside the transaction
        assert con.execute("select distinct model_version from clv_scores").fetchall() == [("1",)]
        assert con.execute("select count(*) from clv_scores_history").fetchall()[0][0] == 3


def test_rows_that_break_the_score_contract_are_refused_by_name(tmp_path):
    """A column not declared in marts/_scores.yml, or a value not of its declared type, is refused before
    anything is written: BI keeps reading the previous scores."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores("1"))
        with pytest.raises(ScoreContractError, match="column\\(s\\) churn_risk are not in the score tables' contract"):
            publish_scores(con, scores("2").assign(churn_risk=0.1))
        with pytest.raises(ScoreContractError, match="clv_scores column cutoff_date: 3 row\\(s\\) are not date values"):
            publish_scores(con, scores("2").assign(cutoff_date="not a date"))
        assert con.execute("select distinct model_version from clv_scores").fetchall() == [("1",)]


def test_score_tables_have_the_declared_columns_and_types_whatever_a_run_computed(tmp_path):
    """A run without P(alive), expected orders or reasons publishes them as NULL of their declared type (not
    as text, not missing), so a later run that has them appends to the same history."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        publish_scores(con, scores("1"))  # no p_alive, expected_orders_12m, reasons
        publish_scores(con, scores("2").assign(p_alive=0.5))
        for table in ("clv_scores", "clv_scores_history"):
            described = con.execute(f"select column_name, data_type from information_schema.columns "
                                    f"where table_name = '{table}' order by ordinal_position").fetchall()
            assert described == score_contract.column_types("duckdb"), table
        rows = con.execute("select model_version, p_alive from clv_scores_history order by 1").fetchall()
        assert rows == [("1", None)] * 3 + [("2", 0.5)] * 3


def test_a_history_from_before_a_column_was_declared_gains_it(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create table clv_scores_history (customer_id varchar, cutoff_date date, "
                    "predicted_clv_12m double, model_name varchar, model_version varchar)")
        con.execute("insert into clv_scores_history values ('0', '2023-01-01', 1.0, 'm', '0')")
        publish_scores(con, scores("1").assign(p_alive=0.5))
        rows = con.execute("select model_version, p_alive from clv_scores_history order by 1, 2").fetchall()
        assert rows == [("0", None)] + [("1", 0.5)] * 3


def test_promote_records_who_and_why_and_rollback_restores(store, monkeypatch, capsys):
    from clv.cli import main

    data, result = train()
    for _ in range(4):
        registered = registry.log_and_register(result, data, "clv_xgboost", {"scoring_cutoff": "2024-01-01"})
        if registered.version != "4":  # version 4 is never gated
            MlflowClient().set_model_version_tag("clv_xgboost", registered.version, "gates", "pass")
        if registered.version == "1":
            registry.make_champion("clv_xgboost", "1")
    monkeypatch.setenv("CLV_OPERATOR", "ana")
    assert main(["promote", "4", "--reason", "looks good"]) == 1  # never gated: refused, nothing moves
    assert "version 4 was never gated: promote it anyway with --force" in capsys.readouterr().err
    assert registry.champion_version("clv_xgboost") == "1"
    assert main(["promote", "3", "--reason", "beat v1 on the shadow run"]) == 0
    assert registry.champion_version("clv_xgboost") == "3"
    tags = MlflowClient().get_model_version("clv_xgboost", "3").tags
    assert (tags["promoted_by"], tags["promotion_reason"], tags["previous_champion"]) == (
        "ana", "beat v1 on the shadow run", "1")
    assert main(["promote", "2", "--reason", "try 2"]) == 0
    assert main(["rollback", "--reason", "v2 mis-scores new customers"]) == 0
    assert registry.champion_version("clv_xgboost") == "3"
    assert MlflowClient().get_model_version("clv_xgboost", "2").tags["rolled_back_by"] == "ana"
    assert main(["rollback", "--reason", "again"]) == 0
    assert registry.champion_version("clv_xgboost") == "1"
    assert main(["rollback", "--reason", "nothing left"]) == 1
    assert "no previous champion" in capsys.readouterr().err
    assert main(["promote", "9", "--reason", "missing"]) == 1
    assert main(["promote", "4", "--reason", "overruling the gates", "--force"]) == 0
    assert MlflowClient().get_model_version("clv_xgboost", "4").tags["promoted_without_passing_gates"] == "true"


def test_a_registry_whose_champion_alias_was_deleted_is_refused_not_served_the_fallback(store):
    """With the alias deleted by hand, the run used to serve last year's spend with exit 0 and "no change"
    while version 1 had passed every gate. Now it stops and names the version to restore; with the alias
    in place (also after a rollback, which moves it) it stays quiet."""
    from clv.store_check import TrackingStoreError, check_tracking_store

    data, result = train()
    for _ in range(2):
        registered = registry.log_and_register(result, data, "clv_xgboost", {"scoring_cutoff": "2024-01-01"})
        MlflowClient().set_model_version_tag("clv_xgboost", registered.version, "gates", "pass")
    registry.make_champion("clv_xgboost", "1")
    registry.promote("clv_xgboost", "2", "test", "newer")
    uri = config.default_tracking_uri()
    check_tracking_store(uri, "clv_xgboost", None)  # quiet: the alias is where clv put it
    registry.rollback("clv_xgboost", "test", "back to 1")
    check_tracking_store(uri, "clv_xgboost", None)  # quiet: a rollback moves the alias
    MlflowClient().delete_registered_model_alias("clv_xgboost", "champion")
    with pytest.raises(TrackingStoreError, match=r"clv_xgboost has no champion alias, but version 1 held it "
                                                 r"\(champion history 1\).*`clv promote 1 --reason"):
        check_tracking_store(uri, "clv_xgboost", None)


def test_a_version_killed_before_its_gates_is_trained_again_not_no_change(store):
    """A run killed between registration and gating left a version that every later --retrain called "no
    change", so it was never gated. A version without a gate outcome no longer counts as trained."""
    data, result = train()
    registered = registry.log_and_register(result, data, "clv_xgboost", {"scoring_cutoff": "2024-01-01"})
    fingerprint = registry.data_fingerprint(data)
    assert registry.find_version("clv_xgboost", fingerprint, result.spec) is None
    MlflowClient().set_model_version_tag("clv_xgboost", registered.version, "gates", "fail")
    assert registry.find_version("clv_xgboost", fingerprint, result.spec) == registered.version


def test_a_champion_whose_model_files_are_gone_is_refused_before_the_run(store):
    """The run used to land and build for minutes, then fail at scoring with `No such artifact: ''`."""
    import shutil

    from clv.store_check import TrackingStoreError, check_tracking_store

    data, result = train()
    registered = registry.log_and_register(result, data, "clv_xgboost", {"scoring_cutoff": "2024-01-01"})
    MlflowClient().set_model_version_tag("clv_xgboost", registered.version, "gates", "pass")
    registry.make_champion("clv_xgboost", registered.version)
    uri = config.default_tracking_uri()
    check_tracking_store(uri, "clv_xgboost", None)  # quiet: the files are there
    files = MlflowClient().get_model_version_download_uri("clv_xgboost", registered.version)[len("file://"):]
    shutil.rmtree(files)
    with pytest.raises(TrackingStoreError, match=r"the files of clv_xgboost version 1 \(the champion\) are missing"):
        check_tracking_store(uri, "clv_xgboost", None)
