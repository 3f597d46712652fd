"""Model configurations as plain specs, so a registered model's configuration can be refit elsewhere.

A spec is `{"type": <name>, "params": {...}}`. The protocol refits the champion's and the challenger's
specs on the same training cutoffs; the registry stores each version's spec.
"""

from __future__ import annotations

import json

from models_ml.baselines import LastPeriodSpend, ScaledLastPeriodSpend, SpendRateTimesLifespan
from models_ml.btyd import BgNbdGammaGamma, ParetoNbdGammaGamma
from models_ml.gradient_boosting import OFFSET_MODEL_PARAMS, HybridCLV, OffsetXGBoostCLV, XGBoostCLV
from models_ml.linear import LinearRFM

CHAMPION_TYPE = "xgboost_offset"


# The types a weekly run backtests and chooses from (the first is kept on a tie while no champion serves).
CANDIDATE_TYPES = (CHAMPION_TYPE, "xgboost")


def default_spec(model_type: str = CHAMPION_TYPE) -> dict:
    params = dict(OFFSET_MODEL_PARAMS) if model_type == "xgboost_offset" else {}
    return {"type": model_type, "params": params}


def candidate_specs(types=CANDIDATE_TYPES) -> list[dict]:
    """Default specs of the candidate types a run chooses from."""
    return [default_spec(t) for t in types]


MODEL_CLASSES = {cls.name: cls for cls in (LastPeriodSpend, ScaledLastPeriodSpend, SpendRateTimesLifespan, LinearRFM,
                                            BgNbdGammaGamma, ParetoNbdGammaGamma, XGBoostCLV, HybridCLV, OffsetXGBoostCLV)}
# Served while no trained model passes the gates; the backtest ranks them (models_ml.gates.choose_fallback).
FALLBACK_TYPES = ("last_period", "last_period_scaled", "bgnbd_gg", "paretonbd_gg")


def build_model(spec: dict, horizon_days: int, history_length_dependent=()):
    """An unfitted model of the spec's type, for a prediction horizon: the spec's params are the XGBoost
    parameters of the tree models; the other models take none. `history_length_dependent` names the
    feature columns the offset model leaves out (from the dbt build's manifest, `clv.dbt_manifest`)."""
    kind, params = spec["type"], dict(spec.get("params") or {})
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model type {kind!r} (known: {', '.join(MODEL_CLASSES)})")
    model_class = MODEL_CLASSES[kind]
    columns = tuple(spec["columns"]) if spec.get("columns") else None  # a champion refit on its own inputs
    if issubclass(model_class, OffsetXGBoostCLV):
        return model_class(params or None, horizon_days=horizon_days,
                           history_length_dependent=tuple(history_length_dependent), columns=columns)
    if issubclass(model_class, XGBoostCLV):
        return model_class(params or None, horizon_days=horizon_days, columns=columns)
    if model_class is ScaledLastPeriodSpend:
        return model_class(horizon_days=horizon_days, factor=params.get("factor"))
    return model_class(horizon_days=horizon_days)


def factory(spec: dict, history_length_dependent=()):
    """f(horizon_days) -> unfitted model, the form the protocol takes."""
    return lambda horizon_days: build_model(spec, horizon_days, history_length_dependent)


def spec_of(model) -> dict:
    """The spec a fitted zoo model was built from."""
    params = getattr(model, "params", None)
    return {"type": model.name, "params": dict(params) if isinstance(params, dict) else {}}


def spec_key(spec: dict) -> str:
    """A canonical text of a spec (type and params; the input columns aside): equal keys mean the same
    configuration."""
    return json.dumps({"type": spec["type"], "params": spec.get("params") or {}}, sort_keys=True)
