"""`clv bench accuracy`: every model on the one evaluation protocol (strict rolling origins, paired
intervals), JSON and an HTML report that a real browser draws."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from clv.bench import bench_accuracy

MODELS = {"heuristic", "last_period", "last_period_scaled", "linear", "bgnbd_gg", "paretonbd_gg", "xgboost", "hybrid",
          "xgboost_offset", "oracle", "bayes_ceiling"}
TRAINED = MODELS - {"oracle", "bayes_ceiling", "last_period", "heuristic"}
HEADLINE = {"deviance", "normalized_gini", "calibration_ratio", "mae"}


@pytest.fixture(scope="module")
def synthetic_bench(tmp_path_factory):
    import os

    work = tmp_path_factory.mktemp("accuracy")
    os.environ["CLV_HOME"] = str(work / "home")
    summary = bench_accuracy("synthetic", work / "synthetic.json", work, customers=3000, resamples=100)
    return summary, work


def test_json_has_origins_intervals_champion_and_oracle(synthetic_bench):
    summary, work = synthetic_bench
    written = json.loads((work / "synthetic.json").read_text())
    assert written["dataset"] == "synthetic" and written["horizon_days"] == 365
    # the champion type is chosen as a weekly run chooses it, and says why
    assert len(written["origins"]) == 3 and written["champion"] in ("xgboost_offset", "xgboost")
    assert written["type_choice"]["chosen"] == written["champion"] and written["type_choice"]["why"]
    assert written["fallback"]["type"] in ("last_period", "last_period_scaled", "bgnbd_gg", "paretonbd_gg")
    assert {g["gate"] for g in written["gates"][written["champion"]]} >= {"calibration", "beats_baseline", "latest_origin"}
    for origin, cutoffs in written["training_cutoffs"].items():  # strictly out of time
        assert all(pd.Timestamp(c) + pd.Timedelta(days=written["backtest_horizon_days"]) <= pd.Timestamp(origin)
                   for c in cutoffs)
    assert set(written["models"]) == MODELS
    for name, metrics in written["models"].items():
        assert HEADLINE <= set(metrics), name
        assert 0 < metrics["mae"] and -1 <= metrics["normalized_gini"] <= 1
        for metric in HEADLINE:
            low, high = written["ci"][name][metric]
            assert low <= metrics[metric] <= high, (name, metric)
            if name != "last_period":
                assert f"{metric}_diff_vs_last_period" in written["ci"][name]
    champion_ci = written["ci"][written["champion"]]
    assert {"normalized_gini_diff_vs_oracle", "normalized_gini_diff_vs_bayes_ceiling"} <= set(champion_ci)
    # the oracle knows the latent state: no model ranks better than it
    assert all(written["models"]["oracle"]["normalized_gini"] >= m["normalized_gini"]
               for n, m in written["models"].items())
    assert abs(written["models"]["oracle"]["calibration_ratio"] - 1) < 0.1
    # the Bayes ceiling is the posterior mean given the data: calibrated, ranked below the oracle, and no
    # model fitted on the data has a smaller squared error (a wrong likelihood would lose to them)
    ceiling = written["models"]["bayes_ceiling"]
    assert abs(ceiling["calibration_ratio"] - 1) < 0.1
    assert written["models"]["oracle"]["normalized_gini"] > ceiling["normalized_gini"]
    assert all(ceiling["pooled_rmse"] < written["models"][name]["pooled_rmse"] for name in TRAINED)
    assert set(written["slices"][written["champion"]]) == {"country", "acquisition_channel"}
    deciles = written["deciles"][written["champion"]]
    assert deciles["bin"] == list(range(1, 11)) and sum(deciles["customers"]) == written["rows"]
    # every model's 80% interval checked out of time, origin by origin, and the base's interval per origin
    for name in MODELS:
        checked = written["distribution"][name]
        assert list(checked["per_origin"]) == written["origins"]
        assert 0 <= checked["overall"]["coverage_80"] <= 1 and checked["overall"]["crps"] > 0
        assert set(checked["by_tier"]) <= {"high", "medium", "low"} and len(checked["by_decile"]) == 10
        assert [c["origin"] for c in written["base_forecast"][name]["all"]] == written["origins"]
    # the ceiling's mean with the same binned spread is calibrated by construction: its intervals hold
    assert 0.75 <= written["distribution"]["bayes_ceiling"]["overall"]["coverage_80"] <= 0.85


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
    # gain curves, calibration, deciles of the champion and the five baselines, the champion's SHAP
    # summary, coverage by decile, the base's fan chart, the three BTYD plots
    assert int(drawn.group(1)) == expected == 2 + 6 + 1 + 2 + 3
    titles = re.findall(r'<figure class="chart" data-title="([^"]+)"', result.stdout)
    assert titles[:2] == ["Gain curves", "Calibration"] and f"SHAP summary: {summary['champion']} (champion)" in titles
    assert {"BTYD: P(alive) by frequency and recency", "BTYD: expected purchases by frequency and recency",
            "BTYD: calibration vs holdout purchases"} <= set(titles)


def test_report_leads_with_the_champion_against_the_baselines(synthetic_bench):
    summary, _ = synthetic_bench
    page = open(summary["report"]).read()
    table = page[page.index('<table id="metrics">'):page.index("</table>", page.index('<table id="metrics">'))]
    order = re.findall(r"<tr[^>]*><th>([a-z_]+)", table)[1:]  # after the header row
    assert order[:6] == [summary["champion"], "last_period", "last_period_scaled", "heuristic", "bgnbd_gg", "paretonbd_gg"]
    assert order[-2:] == ["oracle", "bayes_ceiling"]  # references last, marked as not models
    assert table.count("(reference, not a model)") == 2 and "&#9733; champion" in table
    # the best value per column among the models (not the references) is bold, once per column at least
    models = {n: m for n, m in summary["models"].items() if n not in ("oracle", "bayes_ceiling")}
    best = min(models, key=lambda n: models[n]["deviance"])  # the first column: the primary score
    best_row = re.search(rf"<tr[^>]*><th>{best}.*?</tr>", table).group(0)
    assert best_row.split("<td")[1].startswith(' class="best"')
    assert table.count('class="best"') >= 5
    worst = max(models, key=lambda n: models[n]["deviance"])
    assert not re.search(rf"<tr[^>]*><th>{worst}.*?</tr>", table).group(0).split("<td")[1].startswith(' class="best"')
    # definitions of every metric, the champion by slice beside last year's spend
    for term in ("<dt>Poisson deviance</dt>", "<dt>MAE</dt>", "<dt>normalized Gini</dt>", "<dt>calibration</dt>",
                 "<dt>decile calibration error</dt>", "<dt>interval</dt>"):
        assert term in page
    slices = re.findall(r'<table class="slices" data-slice="([a-z_]+)">', page)
    assert slices == ["country", "acquisition_channel"]
    assert "calibration<br>last_period" in page and "Gini vs overall" in page
    # the gain curves name the champion and the baselines, in the chart's own text
    gain = page[page.index('data-title="Gain curves"'):page.index("</figure>", page.index('data-title="Gain curves"'))]
    assert f"{summary['champion']} (champion)" in gain and "last_period (baseline)" in gain


def test_tuning_searches_before_the_test_origins_and_never_returns_worse_than_the_default(clv_home):
    import mlflow

    from clv.config import default_tracking_uri
    from clv.snapshots import validation_backtest
    from models_ml.tuning import tune
    from clv.snapshots import plan_snapshots
    from tests.models_ml.test_models import synthetic_snapshots

    p = plan_snapshots("2022-12-01", "2024-06-30", 90, min_history_days=90)  # 18 months of month ends
    validation = validation_backtest(p)
    assert validation.feasible and max(validation.origins) < min(p.backtest.origins)
    first_test = pd.Timestamp(min(p.backtest.origins))
    assert all(pd.Timestamp(o) + pd.Timedelta(days=90) <= first_test for o in validation.origins)
    mlflow.set_tracking_uri(default_tracking_uri())
    mlflow.set_experiment("tuning-test")
    result = tune(synthetic_snapshots(400, cutoffs=p.training_cutoffs), validation, n_trials=4)
    runs = mlflow.search_runs(experiment_names=["tuning-test"])
    trials = runs[runs["tags.mlflow.runName"].str.startswith("trial-")]
    assert len(trials) == 4 and trials["metrics.validation_mae"].notna().all()
    assert result["validation_mae"] <= result["default_validation_mae"]  # the default is trial 0
    assert result["validation_mae"] == pytest.approx(trials["metrics.validation_mae"].min())
    if not result["improved"]:
        assert result["spec"]["params"] == {"max_depth": 3, "n_estimators": 200}
