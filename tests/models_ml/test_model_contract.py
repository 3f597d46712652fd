"""The model contract (models_ml/base.py), run over every model of the zoo: scikit-learn estimators with
fit(X, y) -> self, get_params/clone, non-negative predictions in X's row order, the same fit whatever
order the warehouse returns rows in, predictions from the declared columns alone, and specs that rebuild
the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone

from models_ml import zoo
from models_ml.base import CLVModel, features_and_target
from models_ml.features import LABEL_COLUMNS

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

MODEL_TYPES = sorted(zoo.MODEL_CLASSES)
KEYS = ["customer_id", "cutoff_date"]


def labelled_snapshots(n: int = 600, cutoffs=("2023-06-30", "2023-09-30"), seed: int = 3) -> pd.DataFrame:
    """Snapshots with every column some model reads, and their labels: repeat buyers with a latent rate."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.5, 1.0, n)
    frames = []
    for cutoff in cutoffs:
        tenure = rng.integers(60, 700, n).astype(float)
        frequency = rng.poisson(rate * tenure / 120).astype(float)
        recency = np.where(frequency > 0, tenure * rng.uniform(0.2, 1.0, n), 0.0)
        value = rng.gamma(2.0, 25.0, n)
        frames.append(pd.DataFrame({
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "cutoff_date": pd.Timestamp(cutoff).date().isoformat(),
            "days_since_last_order": tenure - recency,
            "order_days_count": frequency + 1,
            "avg_order_value": value,
            "tenure_days": tenure,
            "revenue_total": value * (frequency + 1),
            "revenue_sum_365d": value * rng.poisson(rate * 3),
            "orders_count_365d": rng.poisson(rate * 3).astype(float),
            "observable_history_days": 365.0,
            "btyd_frequency": frequency,
            "btyd_recency": recency,
            "btyd_t": tenure,
            "btyd_monetary_value": np.where(frequency > 0, value, 0.0),
            "horizon_days": 365,
            "future_revenue": value * rng.poisson(rate * 3),
            "future_orders_count": rng.poisson(rate * 3),
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def data():
    return features_and_target(labelled_snapshots())


def fitted(model_type: str, data):
    X, y = data
    return zoo.build_model(zoo.default_spec(model_type), 365).fit(X, y)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_model_is_a_scikit_learn_estimator_whose_fit_returns_itself(model_type, data):
    model = zoo.build_model(zoo.default_spec(model_type), 365)
    assert isinstance(model, CLVModel) and isinstance(model, BaseEstimator) and model.name == model_type
    params = model.get_params()
    assert clone(model).get_params() == params and type(clone(model)) is type(model)
    assert model.fit(*data) is model


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_predictions_are_non_negative_floats_in_the_rows_order(model_type, data):
    X, _ = data
    model = fitted(model_type, data)
    predictions = model.predict(X)
    assert predictions.shape == (len(X),) and predictions.dtype == np.float64
    assert np.isfinite(predictions).all() and (predictions >= 0).all()
    shuffled = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(model.predict(X.iloc[shuffled]), predictions[shuffled], rtol=1e-9)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_fit_does_not_depend_on_the_order_rows_arrive_in(model_type, data):
    X, y = data
    order = np.random.default_rng(1).permutation(len(X))
    again = zoo.build_model(zoo.default_spec(model_type), 365).fit(X.iloc[order], y.iloc[order])
    np.testing.assert_allclose(again.predict(X), fitted(model_type, data).predict(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_model_predicts_from_its_declared_columns_alone(model_type, data):
    X, _ = data
    model = fitted(model_type, data)
    columns = list(dict.fromkeys([*KEYS, *model.required_columns()]))
    np.testing.assert_allclose(model.predict(X[columns]), model.predict(X), rtol=1e-12)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_models_spec_rebuilds_the_same_model(model_type, data):
    X, y = data
    model = fitted(model_type, data)
    spec = zoo.spec_of(model)
    assert spec["type"] == model_type
    rebuilt = zoo.build_model(spec, 365).fit(X, y)
    np.testing.assert_allclose(rebuilt.predict(X), model.predict(X), rtol=1e-9)


def test_the_model_input_never_holds_a_label():
    X, y = features_and_target(labelled_snapshots(50))
    assert not set(LABEL_COLUMNS) & set(X.columns) and y.name == "future_revenue"


def test_labels_move_the_supervised_models_and_not_the_label_free_ones(data):
    """The supervised models learn from y; last year's spend and BG/NBD + Gamma-Gamma ignore it."""
    X, y = data
    for model_type in MODEL_TYPES:
        model = fitted(model_type, data)
        doubled = zoo.build_model(zoo.default_spec(model_type), 365).fit(X, y * 2 + 10)
        moved = not np.allclose(doubled.predict(X), model.predict(X))
        assert moved == (model_type not in ("last_period", "bgnbd_gg", "paretonbd_gg")), model_type


def test_an_unknown_model_type_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown model type 'forest'.*xgboost_offset"):
        zoo.build_model({"type": "forest"}, 365)
