"""`clv bench accuracy`: every model on one strict temporal holdout, JSON and an HTML report that a
real browser draws."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from clv.bench import bench_accuracy
from models_ml.evaluation import strict_temporal_split

MODELS = {"heuristic", "last_period", "linear", "bgnbd_gg", "xgboost", "hybrid", "xgboost_offset"}
METRICS = {"mae", "rmse", "normalized_gini", "spearman", "decile_mape", "top10_capture", "calibration_ratio"}


def test_strict_split_keeps_training_labels_before_the_test_cutoff():
    frame = pd.DataFrame({"cutoff_date": pd.to_datetime(["2020-01-01", "2020-04-01", "2020-07-01", "2021-01-01"])})
    train, test = strict_temporal_split(frame, horizon_days=180)
    assert test["cutoff_date"].tolist() == [pd.Timestamp("2021-01-01")]
    assert train["cutoff_date"].tolist() == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-04-01"),
                                              pd.Timestamp("2020-07-01")]
    train, _ = strict_temporal_split(frame, horizon_days=200)  # 2020-07-01 + 200 days > 2021-01-01
    assert len(train) == 2


@pytest.fixture(scope="module")
def synthetic_bench(tmp_path_factory):
    import os

    work = tmp_path_factory.mktemp("accuracy")
    os.environ["CLV_HOME"] = str(work / "home")
    summary = bench_accuracy("synthetic", work / "synthetic.json", work, customers=3000)
    return summary, work


def test_json_has_every_model_and_metric(synthetic_bench):
    summary, work = synthetic_bench
    written = json.loads((work / "synthetic.json").read_text())
    assert written["dataset"] == "synthetic" and written["horizon_days"] == 365
    assert pd.Timestamp(written["train_cutoff"]) + pd.Timedelta(days=365) <= pd.Timestamp(written["test_cutoff"])
    assert set(written["models"]) == MODELS
    for name, metrics in written["models"].items():
        assert METRICS <= set(metrics), name
        assert 0 < metrics["mae"] and -1 <= metrics["normalized_gini"] <= 1
    assert set(written["slices"]["xgboost"]) == {"country", "acquisition_channel"}
    assert 0 < written["disparate_impact"]["xgboost"]["acquisition_channel"] <= 1
    deciles = written["deciles"]["xgboost_offset"]
    assert deciles["bin"] == list(range(1, 11)) and sum(deciles["customers"]) == written["customers_test"]


def test_report_charts_are_drawn_in_headless_chromium(synthetic_bench, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium package)")
    summary, _ = synthetic_bench
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
         f"file://{summary['report']}"],
        capture_output=True, text=True, timeout=180,
    )
    expected = int(re.search(r'data-charts-expected="(\d+)"', result.stdout).group(1))
    drawn = re.search(r'data-charts-drawn="(\d+)"', result.stdout)
    assert drawn is not None, result.stderr[-2000:]
    # Lorenz, calibration, one decile chart per model, SHAP summary
    assert int(drawn.group(1)) == expected == 2 + len(MODELS) + 1


def test_tuning_logs_every_trial_and_returns_the_best(clv_home):
    import mlflow

    from clv.config import default_tracking_uri
    from models_ml.tuning import tune_xgboost
    from tests.test_models import synthetic_snapshots

    mlflow.set_tracking_uri(default_tracking_uri())
    mlflow.set_experiment("tuning-test")
    best = tune_xgboost(synthetic_snapshots(400), horizon_days=90, n_trials=3)
    runs = mlflow.search_runs(experiment_names=["tuning-test"])
    trials = runs[runs["tags.mlflow.runName"].str.startswith("trial-")]
    assert len(trials) == 3 and trials["metrics.validation_mae"].notna().all()
    parent = runs[runs["tags.mlflow.runName"] == "xgboost-tuning"].iloc[0]
    assert parent["params.validation_protocol"] == "strict"  # 90-day labels end before the last cutoff
    assert float(parent["metrics.best_validation_mae"]) == pytest.approx(trials["metrics.validation_mae"].min())
    assert set(best) == {"max_depth", "learning_rate", "n_estimators", "min_child_weight", "subsample",
                         "colsample_bytree", "tweedie_variance_power"}
