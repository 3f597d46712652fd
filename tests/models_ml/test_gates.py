"""Prediction sanity and the shadow comparison by hand (the backtest gates: tests/models_ml/test_protocol.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models_ml.gates import prediction_sanity

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_prediction_sanity_by_hand():
    assert prediction_sanity([1.0, 2.0, 3.0]).passed
    assert not prediction_sanity([5.0, 5.0, 5.0]).passed  # all equal
    assert not prediction_sanity([-1.0, 2.0, 3.0]).passed
    assert prediction_sanity([np.nan, 2.0, 3.0]).values["nan"] == 1


def test_shadow_comparison_by_hand():
    from models_ml.shadow import compare_shadow

    result = compare_shadow([10.0, 20.0, 30.0], [12.0, 24.0, 30.0], 1.0, 2.0)
    assert result["mean_shift"] == 2 / 20 and result["passed"] and result["spearman"] == 1.0
    assert not compare_shadow([10.0, 20.0, 30.0], [20.0, 30.0, 40.0], 1.0, 1.0)["passed"]  # +50%
    assert not compare_shadow([10.0, 20.0, 30.0], [10.0, 20.0, 30.0], 1.0, 5.0)["passed"]  # 5x slower
