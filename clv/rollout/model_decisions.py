"""What happens to a trained model: registered or recognised as "no change", gated, and made champion,
challenger, or left unserved. The outcomes:

- `no_change`: a version with the same configuration was already trained on exactly this data; nothing is
  registered and nothing fails.
- `champion`: the first version that passes every gate (against last year's spend, calibration, slices).
- `not_served`: no champion yet and this version fails a gate; the fallback the backtest ranked best
  (last year's spend, scaled or not, BG/NBD or Pareto/NBD with Gamma-Gamma) is served.
- `challenger`: a later version passing every gate, including "not worse than the champion"; promotion
  stays a person's decision (`clv promote`).
- `rejected`: a later version failing a gate.
"""

from __future__ import annotations

import logging

import pandas as pd

from models_ml import registry
from models_ml.gates import GateConfig, as_dicts, evaluate_gates, gates_passed
from models_ml.training import TrainingResult
from models_ml.zoo import spec_key

log = logging.getLogger(__name__)


def champion_spec(model_name: str) -> tuple[str | None, dict | None]:
    """The champion's version and configuration (None, None without a champion)."""
    import json

    version = registry.champion_version(model_name)
    if version is None:
        return None, None
    tags = registry.version_tags(model_name, version)
    if "model_spec" in tags:
        spec = json.loads(tags["model_spec"])
    else:
        model, _, _ = registry.load_model_by_alias(model_name)  # versions registered before specs were tagged
        from models_ml.zoo import spec_of

        spec = spec_of(model)
    columns = registry.feature_columns_of(model_name, version)
    return version, {**spec, **({"columns": columns} if columns else {})}  # refit on its own inputs


def existing_version(model_name: str, serving_rows: pd.DataFrame, specs: list[dict]) -> str | None:
    """A version already trained with one of these configurations on exactly these rows."""
    fingerprint = registry.data_fingerprint(serving_rows)
    found = [v for v in (registry.find_version(model_name, fingerprint, spec) for spec in specs) if v is not None]
    return max(found, key=int) if found else None


def decide(result: TrainingResult, registered: registry.RegisteredModel, champion: str | None,
           gate_config: dict | None = None) -> dict:
    """Gate a newly registered version and move the aliases accordingly; returns the decision with every
    gate's numbers."""
    config = GateConfig(**(gate_config or {}))
    same_configuration = result.champion_spec is not None and spec_key(result.champion_spec) == spec_key(result.spec)
    if result.backtest is None:
        gates, passed = [], False
        reason = "no strict backtest was possible on these data, so the version cannot be gated"
    else:
        results = evaluate_gates(result.backtest, champion is not None, same_configuration, config,
                                 fallback=result.fallback["type"])
        gates, passed = as_dicts(results), gates_passed(results)
        reason = "passed every gate" if passed else "failed: " + ", ".join(g["gate"] for g in gates if not g["passed"])
    if champion is None:
        outcome = "champion" if passed else "not_served"
    else:
        outcome = "challenger" if passed else "rejected"
    registry.record_gates(registered.name, registered.version, registered.run_id, gates, passed, outcome)
    if outcome == "champion":
        registry.make_champion(registered.name, registered.version)
    log.info("version %s: %s (%s)", registered.version, outcome, reason)
    return {"version": registered.version, "outcome": outcome, "passed": passed, "reason": reason,
            "champion_version": champion, "same_configuration_as_champion": same_configuration,
            "model_type": result.spec["type"], "type_choice": result.type_choice, "fallback": result.fallback,
            "gates": [{"gate": g["gate"], "passed": g["passed"], "detail": g["detail"]} for g in gates]}
