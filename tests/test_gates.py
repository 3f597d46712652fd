"""Promotion gates, each with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models_ml.gates import GateConfig, evaluate_gates, gates_passed


def holdout(predicted, country=None):
    frame = pd.DataFrame({"actual": [0.0, 0.0, 10.0, 30.0] * 10, "predicted": list(predicted) * 10})
    if country is not None:
        frame["country"] = list(country) * 10
    return frame


def by_name(results):
    return {r.gate: r for r in results}


def test_good_model_passes_every_gate():
    results = evaluate_gates(holdout([1.0, 2.0, 12.0, 28.0], ["A", "B", "A", "B"]), np.array([5.0, 1.0, 2.0, 3.0] * 10),
                             GateConfig(min_slice_customers=5, disparate_impact_min=0.4))
    assert gates_passed(results)
    assert set(by_name(results)) == {"prediction_sanity", "gini_floor", "beats_champion", "disparate_impact_country"}


def test_each_gate_fails_for_its_reason():
    constant = by_name(evaluate_gates(holdout([5.0, 5.0, 5.0, 5.0])))
    assert not constant["prediction_sanity"].passed and constant["prediction_sanity"].values["distinct"] == 1
    reversed_ranking = by_name(evaluate_gates(holdout([30.0, 10.0, 0.0, 0.0])))
    assert not reversed_ranking["gini_floor"].passed
    assert reversed_ranking["gini_floor"].values["normalized_gini"] < 0
    worse = by_name(evaluate_gates(holdout([1.0, 2.0, 12.0, 28.0]), np.array([0.0, 0.0, 10.0, 30.0] * 10)))
    assert not worse["beats_champion"].passed and worse["beats_champion"].values["champion"]["mae"] == 0
    # country A: mean prediction (1 + 12) / 2 = 6.5; B: (2 + 28) / 2 = 15 -> ratio 0.433
    unfair = by_name(evaluate_gates(holdout([1.0, 2.0, 12.0, 28.0], ["A", "B", "A", "B"]),
                                    config=GateConfig(min_slice_customers=5)))
    assert not unfair["disparate_impact_country"].passed
    assert round(unfair["disparate_impact_country"].values["ratio"], 3) == 0.433
    negative = by_name(evaluate_gates(holdout([-1.0, 2.0, 12.0, 28.0])))
    assert not negative["prediction_sanity"].passed


def test_shadow_comparison_by_hand():
    from models_ml.shadow import compare_shadow

    result = compare_shadow([10.0, 20.0, 30.0], [12.0, 24.0, 30.0], 1.0, 2.0)
    assert result["mean_shift"] == 2 / 20 and result["passed"] and result["spearman"] == 1.0
    assert not compare_shadow([10.0, 20.0, 30.0], [20.0, 30.0, 40.0], 1.0, 1.0)["passed"]  # +50%
    assert not compare_shadow([10.0, 20.0, 30.0], [10.0, 20.0, 30.0], 1.0, 5.0)["passed"]  # 5x slower
