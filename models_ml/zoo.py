"""Model configurations as plain specs, so a registered model's configuration can be refit elsewhere.

A spec is `{"type": <name>, "params": {...}}`. The protocol refits the champion's and the challenger's
specs on the same training cutoffs; the registry stores each version's spec.
"""

from __future__ import annotations

import json

from models_ml.baselines import LastPeriodSpend, SpendRateTimesLifespan
from models_ml.btyd import BgNbdGammaGamma
from models_ml.gradient_boosting import OFFSET_MODEL_PARAMS, XGBoostCLV
from models_ml.linear import LinearRFM

CHAMPION_TYPE = "xgboost_offset"


def default_spec(model_type: str = CHAMPION_TYPE) -> dict:
    params = dict(OFFSET_MODEL_PARAMS) if model_type == "xgboost_offset" else {}
    return {"type": model_type, "params": params}


def build_model(spec: dict, horizon_days: int):
    """An unfitted model of the spec's type, for a prediction horizon."""
    kind, params = spec["type"], dict(spec.get("params") or {})
    if kind == "last_period":
        return LastPeriodSpend(horizon_days)
    if kind == "heuristic":
        return SpendRateTimesLifespan(horizon_days)
    if kind == "linear":
        return LinearRFM()
    if kind == "bgnbd_gg":
        return BgNbdGammaGamma(horizon_days)
    if kind == "xgboost":
        return XGBoostCLV(params or None, horizon_days=horizon_days)
    if kind == "hybrid":
        return XGBoostCLV(params or None, with_btyd=True, horizon_days=horizon_days)
    if kind == "xgboost_offset":
        return XGBoostCLV(params or None, horizon_days=horizon_days, offset="last_period")
    raise ValueError(f"unknown model type {kind!r}")


def factory(spec: dict):
    """f(horizon_days) -> unfitted model, the form the protocol takes."""
    return lambda horizon_days: build_model(spec, horizon_days)


def spec_of(model) -> dict:
    """The spec a fitted zoo model was built from."""
    params = getattr(model, "params", None)
    kind = {"xgboost_tuned": "xgboost"}.get(model.name, model.name)
    return {"type": kind, "params": dict(params) if isinstance(params, dict) else {}}


def spec_key(spec: dict) -> str:
    """A canonical text of a spec: equal keys mean the same configuration."""
    return json.dumps({"type": spec["type"], "params": spec.get("params") or {}}, sort_keys=True)
