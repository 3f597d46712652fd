"""Reasons marketers read in clv_scores: the inputs that move a score most, in words, with the same facts
as JSON for tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from models_ml.reasons import (
    PHRASES,
    baseline_reasons,
    describe,
    merge_same_facts,
    phrase,
    reasons_in_batches,
    top_reasons,
)

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

MARTS = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts" / "_marts.yml"


def test_the_largest_contributions_in_words_with_value_and_amount():
    contributions = pd.DataFrame({"last_year_spend": [310.4, 2.0], "days_since_last_order": [-45.2, -900.0],
                                  "return_rate": [3.1, 0.5], "revenue_sum_90d": [1.0, 120.0]})
    values = pd.DataFrame({"revenue_sum_365d": [1240.0, 15.5], "days_since_last_order": [12, 400],
                           "return_rate": [0.25, 0.0], "revenue_sum_90d": [80.0, 0.0]})
    text, records = top_reasons(contributions, values)
    assert list(text) == [
        "spent 1,240 in the last year (+310); last order 12 days ago (-45); returned 25% of spend (+3)",
        "last order 400 days ago (-900); spent 0 in the last 90 days (+120); spent 16 in the last year (+2)"]
    first = json.loads(records[0])
    assert first == [{"feature": "last_year_spend", "value": 1240, "contribution": 310.4},
                     {"feature": "days_since_last_order", "value": 12, "contribution": -45.2},
                     {"feature": "return_rate", "value": 0.25, "contribution": 3.1}]
    assert [r["feature"] for r in json.loads(records[1])] == ["days_since_last_order", "revenue_sum_90d",
                                                                 "last_year_spend"]


def test_last_years_spend_is_one_reason_however_many_terms_carry_it():
    """The offset model has last year's spend as its starting point and as a tree input: one fact, one
    reason, with both contributions added."""
    contributions = pd.DataFrame({"last_year_spend": [300.0], "revenue_sum_365d": [-20.0], "return_rate": [5.0]})
    text, records = top_reasons(contributions, pd.DataFrame({"revenue_sum_365d": [900.0], "return_rate": [0.1]}))
    assert text[0] == "spent 900 in the last year (+280); returned 10% of spend (+5)"
    assert [r["feature"] for r in json.loads(records[0])] == ["last_year_spend", "return_rate"]


def test_missing_values_and_unknown_inputs_still_read():
    contributions = pd.DataFrame({"days_since_last_session": [-20.0], "brand_new_feature": [5.0]})
    values = pd.DataFrame({"days_since_last_session": [np.nan], "brand_new_feature": [0.5]})
    text, records = top_reasons(contributions, values, k=3)
    assert text[0] == "days_since_last_session not recorded (-20); brand_new_feature 0.50 (+5)"
    assert json.loads(records[0])[0] == {"feature": "days_since_last_session", "value": None, "contribution": -20.0}


def test_amounts_read_as_python_formats_them_however_many_rows_share_a_value():
    """Amounts are formatted once per distinct whole number: the text must be what formatting each value
    gives, halves rounded to even and a small negative amount reading -0 (not +0 nor merged with it)."""
    values = np.array([2.5, 3.5, -0.3, 0.3, -0.5, 0.0, 1234567.49, -2.5, np.nan, 0.49999999])
    contributions = np.array([0.5, 1.5, -0.2, 0.2, -0.5, -0.0, 2.5000001, -1234.5, 7.0, -0.49999999])
    expected = ["spent {:,.0f} in all ({:+,.0f})".format(v, c) if not np.isnan(v)
                else "revenue_total not recorded ({:+,.0f})".format(c) for v, c in zip(values, contributions)]
    assert list(describe("revenue_total", values, contributions)) == expected
    assert "spent -0 in all (-0)" in expected and "spent 0 in all (+0)" in expected  # both signs of zero occur


def test_window_features_name_their_window():
    assert phrase("orders_count_30d") == ("{v} orders in the last 30 days", "count")
    contributions = pd.DataFrame({"session_duration_s_mean_90d": [7.0]})
    text, _ = top_reasons(contributions, pd.DataFrame({"session_duration_s_mean_90d": [150.0]}))
    assert text[0] == "visits of 2.5 minutes in the last 90 days (+7)"


def test_every_documented_feature_has_a_phrase():
    """A model input without a phrase shows its column name: add one to PHRASES with a new feature."""
    columns = next(m for m in yaml.safe_load(MARTS.read_text())["models"] if m["name"] == "customer_features")["columns"]
    not_inputs = {"customer_id", "cutoff_date", "country", "acquisition_channel"}
    generic = [c["name"] for c in columns if c["name"] not in not_inputs
               and phrase(c["name"])[0] == c["name"] + " {v}"]
    assert generic == []
    assert set(PHRASES) - {c["name"] for c in columns} == {"last_year_spend", "expected_orders", "p_alive",
                                                           "expected_order_value", "btyd_clv"}


def test_batches_give_the_same_reasons_as_one_pass():
    from models_ml.base import features_and_target
    from models_ml.gradient_boosting import OffsetXGBoostCLV
    from tests.models_ml.test_models import synthetic_snapshots

    data = synthetic_snapshots(300)
    model = OffsetXGBoostCLV({"max_depth": 3, "n_estimators": 50}, horizon_days=365).fit(*features_and_target(data))
    latest = data[data["cutoff_date"] == data["cutoff_date"].max()]
    whole = reasons_in_batches(model, latest)
    batched = reasons_in_batches(model, latest, batch_size=37)
    assert list(whole[0]) == list(batched[0]) and list(whole[1]) == list(batched[1])
    explained = merge_same_facts(model.explain(latest))
    assert "revenue_sum_365d" not in explained and "last_year_spend" in explained
    for text, record, (_, row) in zip(whole[0], whole[1], explained.iterrows()):
        parsed = json.loads(record)
        assert [r["feature"] for r in parsed] == list(row.abs().sort_values(ascending=False, kind="stable").index[:3])
        assert [r["contribution"] for r in parsed] == pytest.approx(
            [round(row[r["feature"]], 2) for r in parsed], abs=0.006)
        assert text.count("; ") == 2


def test_while_no_model_is_served_the_reason_is_last_years_spend():
    text, records = baseline_reasons(pd.DataFrame({"revenue_sum_365d": [1234.4, np.nan]}), 180)
    assert text[0] == ("spent 1,234 in the last year; last year's spend (x 180/365) is served: no model has "
                       "passed the gates yet")
    assert json.loads(records[1]) == [{"feature": "last_year_spend", "value": 0, "contribution": None}]


@pytest.mark.parametrize("model_type", ["xgboost_offset", "xgboost", "hybrid"])
def test_tree_shap_by_split_pattern_equals_xgboosts_on_every_row(model_type):
    """Reasons run TreeSHAP tree by tree on one row per split pattern: every row gets XGBoost's own
    contributions (to float32 precision), including rows exactly at a split threshold, just below one,
    and missing values."""
    import xgboost as xgb

    from models_ml import zoo
    from models_ml.base import features_and_target
    from models_ml.tree_shap import tree_splits
    from tests.models_ml.test_models import synthetic_snapshots

    data = synthetic_snapshots(600).assign(  # BTYD inputs for the hybrid
        btyd_frequency=lambda d: d["orders_count_365d"], btyd_recency=lambda d: 200 * (d["orders_count_365d"] > 0),
        btyd_t=300, btyd_monetary_value=lambda d: 20.0 * (d["orders_count_365d"] > 0), avg_order_value=20.0)
    data["days_since_last_order"] = data["days_since_last_order"].astype(float)
    model = zoo.build_model({"type": model_type, "params": {"max_depth": 6, "n_estimators": 60}}, 365)
    model.fit(*features_and_target(data))
    rows = data[data["cutoff_date"] == data["cutoff_date"].max()].copy()
    j = list(model.inputs(rows).columns).index("days_since_last_order")
    splits = tree_splits(model.model_.get_booster())
    threshold = float(splits.thresholds[j][len(splits.thresholds[j]) // 2])
    column = rows.columns.get_loc("days_since_last_order")
    rows.iloc[:50, column] = threshold  # at a split: goes right
    rows.iloc[50:100, column] = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # just below: left
    rows.iloc[100:150, column] = np.nan

    X, margin = model.inputs(rows), model._margin(rows)
    direct = model.model_.get_booster().predict(xgb.DMatrix(X, **margin), pred_contribs=True)
    ours = model._tree_shap(X, margin.get("base_margin"))
    assert ours.shape == direct.shape
    assert ours == pytest.approx(direct.astype(float), rel=1e-4, abs=1e-5)
    assert not np.allclose(direct[:50, j], direct[50:100, j])  # the threshold rows do differ
    assert model._tree_shap(X.iloc[:0], None).shape == (0, X.shape[1] + 1)


def test_a_count_of_zero_reads_as_none_and_other_zeros_stay_numbers():
    from models_ml.reasons import describe

    texts = describe("distinct_products_365d", np.array([0.0, 3.0]), np.array([176.0, -5.0])).tolist()
    assert texts == ["bought no different products in the last 365 days (+176)",
                     "bought 3 different products in the last 365 days (-5)"]
    assert describe("orders_count_90d", np.array([0.0]), np.array([-12.0])).tolist() == ["no orders in the last 90 days (-12)"]
    assert describe("tenure_days", np.array([0.0]), np.array([1.0])).tolist() == ["first order 0 days ago (+1)"]
