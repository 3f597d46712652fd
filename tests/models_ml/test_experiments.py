"""Canary and A/B lists, and the A/B statistics checked against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models_ml.experiments import ab_assignment, canary_targets, welch_ab

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_welch_matches_scipy_and_the_textbook_interval():
    rng = np.random.default_rng(4)
    a, b = rng.gamma(2, 50, 800), rng.gamma(2, 56, 700)
    result = welch_ab(a, b)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert result["t_statistic"] == pytest.approx(reference.statistic)
    assert result["p_value"] == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)  # scipy's Welch interval for mean(b) - mean(a)
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert result["lift"] == pytest.approx(b.mean() / a.mean() - 1)


def test_sample_size_rule():
    # sd 10 in both arms, 1 unit difference (10% of 10): n = (1.96 + 0.8416)^2 x 200 / 1 = 1570.0 -> 1570
    a = np.tile([0.0, 20.0], 500)  # mean 10, sd 10.005
    result = welch_ab(a, a + 1.0, min_detectable_lift=0.1)
    assert result["customers_needed_per_arm"] == pytest.approx(1571, abs=3)
    assert not result["sample_large_enough"]
    assert welch_ab(np.tile(a, 2), np.tile(a + 1.0, 2), min_detectable_lift=0.1)["sample_large_enough"]


def test_canary_takes_five_percent_from_the_challenger():
    scores = pd.DataFrame({"customer_id": [str(i) for i in range(100)],
                           "champion_prediction": np.arange(100.0), "challenger_prediction": -np.arange(100.0)})
    targets = canary_targets(scores, size=40)
    assert (targets["chosen_by"] == "champion").sum() == 38 and (targets["chosen_by"] == "challenger").sum() == 2
    assert set(targets.loc[targets["chosen_by"] == "challenger", "customer_id"]) == {"0", "1"}
    assert targets["customer_id"].is_unique
    with pytest.raises(ValueError, match="between 1 and 100"):
        canary_targets(scores, size=101)


def test_ab_assignment_is_seeded_stable_and_balanced():
    ids = [f"c{i}" for i in range(4000)]
    arms = ab_assignment(ids, seed=11)
    assert list(arms) == list(ab_assignment(ids, seed=11)) and list(arms) != list(ab_assignment(ids, seed=12))
    assert 0.47 < (arms == "A").mean() < 0.53


def test_ab_segments_and_analysis_on_a_warehouse(tmp_path, capsys):
    import duckdb

    from clv.cli import main

    warehouse = tmp_path / "w.duckdb"
    rng = np.random.default_rng(2)
    scores = pd.DataFrame({"customer_id": [f"c{i}" for i in range(3000)], "champion_prediction": rng.gamma(2, 50, 3000)})
    scores["challenger_prediction"] = scores["champion_prediction"] * 1.1
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table shadow_scores as select * from scores")
        con.execute("create table shadow_runs as select '4' as champion_version, '5' as challenger_version, "
                    "current_timestamp as run_at")
    assert main(["segments", "--kind", "ab", "--seed", "9", "--warehouse", str(warehouse)]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        arms = con.execute("select customer_id, arm from campaign_ab").df().set_index("customer_id")["arm"]
    observed = pd.DataFrame({"customer_id": arms.index, "revenue": rng.gamma(2, 50, len(arms))})
    observed.loc[arms.loc[observed["customer_id"]].to_numpy() == "B", "revenue"] *= 1.2
    observed.iloc[:-100].to_csv(tmp_path / "observed.csv", index=False)  # 100 customers bought nothing
    assert main(["ab-analyze", "--observed", str(tmp_path / "observed.csv"), "--warehouse", str(warehouse),
                 "--json", str(tmp_path / "ab.json")]) == 0
    out = capsys.readouterr().out
    assert "Welch t =" in out and "lift +" in out
    import json

    result = json.loads((tmp_path / "ab.json").read_text())
    revenue = observed.iloc[:-100].set_index("customer_id")["revenue"].reindex(arms.index).fillna(0)
    expected = welch_ab(revenue[arms == "A"], revenue[arms == "B"])
    assert result["p_value"] == pytest.approx(expected["p_value"]) and result["significant"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"customer": ["c1"], "revenue": [1.0]}).to_csv(bad, index=False)
    assert main(["ab-analyze", "--observed", str(bad), "--warehouse", str(warehouse)]) == 1
    assert "missing column(s) customer_id" in capsys.readouterr().err
