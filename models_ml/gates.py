"""Promotion gates a retrained model must pass to become `challenger`. Each gate reports pass/fail with
the numbers behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from models_ml.metrics import disparate_impact_ratio, mae, normalized_gini


@dataclass
class GateConfig:
    gini_floor: float = 0.3
    disparate_impact_min: float = 0.8
    slice_columns: tuple[str, ...] = ("country", "acquisition_channel")
    min_slice_customers: int = 30
    require_beating_champion: bool = True


@dataclass
class GateResult:
    gate: str
    passed: bool
    detail: str
    values: dict = field(default_factory=dict)


def prediction_sanity(predictions) -> GateResult:
    p = np.asarray(predictions, float)
    values = {"nan": int(np.isnan(p).sum()), "negative": int((p < 0).sum()),
              "distinct": int(len(np.unique(p[~np.isnan(p)])))}
    passed = values["nan"] == 0 and values["negative"] == 0 and values["distinct"] > 1
    return GateResult("prediction_sanity", passed, f"{values['nan']} NaN, {values['negative']} negative, "
                      f"{values['distinct']} distinct values", values)


def gini_floor(actual, predictions, floor: float) -> GateResult:
    gini = normalized_gini(actual, predictions)
    return GateResult("gini_floor", bool(gini >= floor), f"normalized Gini {gini:.3f} (floor {floor})",
                      {"normalized_gini": gini, "floor": floor})


def beats_champion(actual, predictions, champion_predictions) -> GateResult:
    """Better normalized Gini and lower MAE than the champion on the same holdout rows."""
    new = {"mae": mae(actual, predictions), "normalized_gini": normalized_gini(actual, predictions)}
    old = {"mae": mae(actual, champion_predictions), "normalized_gini": normalized_gini(actual, champion_predictions)}
    passed = new["normalized_gini"] > old["normalized_gini"] and new["mae"] < old["mae"]
    return GateResult("beats_champion", passed,
                      f"MAE {new['mae']:,.2f} vs champion {old['mae']:,.2f}; Gini {new['normalized_gini']:.3f} "
                      f"vs {old['normalized_gini']:.3f}", {"challenger": new, "champion": old})


def disparate_impact(holdout: pd.DataFrame, column: str, minimum: float, min_customers: int) -> GateResult:
    counts = holdout[column].value_counts()
    kept = holdout[holdout[column].isin(counts[counts >= min_customers].index)]
    ratio = disparate_impact_ratio(kept["predicted"], kept[column])
    passed = bool(np.isnan(ratio) or ratio >= minimum)
    return GateResult(f"disparate_impact_{column}", passed,
                      f"min/max mean prediction across {kept[column].nunique()} {column} values = {ratio:.3f} "
                      f"(minimum {minimum})", {"ratio": ratio, "minimum": minimum})


def evaluate_gates(holdout: pd.DataFrame, champion_predictions=None, config: GateConfig | None = None) -> list[GateResult]:
    """All gates on a holdout frame with `actual`, `predicted` and slice columns."""
    config = config or GateConfig()
    actual, predicted = holdout["actual"].to_numpy(float), holdout["predicted"].to_numpy(float)
    results = [prediction_sanity(predicted), gini_floor(actual, predicted, config.gini_floor)]
    if config.require_beating_champion and champion_predictions is not None:
        results.append(beats_champion(actual, predicted, champion_predictions))
    for column in config.slice_columns:
        if column in holdout and holdout[column].nunique() > 1:
            results.append(disparate_impact(holdout, column, config.disparate_impact_min, config.min_slice_customers))
    return results


def gates_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)


def as_dicts(results: list[GateResult]) -> list[dict]:
    return [asdict(r) for r in results]
