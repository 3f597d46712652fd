"""Promotion gates, decided on the strict backtest (models_ml/protocol.py): every gate compares like with
like (models refit on the same training cutoffs, scored on the same out-of-time rows, paired intervals)
and reports pass/fail with the numbers behind it.

- The first version must not be worse than last year's spend and must be calibrated in aggregate; when it
  is not, the platform keeps serving last year's spend and says so.
- A later version must also not be worse than the champion's configuration: not worse on MAE at 95%
  (the paired interval of the MAE difference does not lie above zero) and normalized Gini not lower by
  more than `gini_tolerance`. The same configuration refit on newer data ties by construction.
- Fairness by slice (country, channel): each slice's calibration (predicted / actual) within a band and
  its normalized Gini above a floor, unless last year's spend does no better on that slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from models_ml.protocol import BASELINE, BacktestResult, slice_table

CANDIDATE, CHAMPION = "candidate", "champion"


@dataclass
class GateConfig:
    gini_floor: float = 0.3
    gini_tolerance: float = 0.01
    calibration_band: tuple[float, float] = (0.8, 1.25)
    slice_columns: tuple[str, ...] = ("country", "acquisition_channel")
    min_slice_customers: int = 100
    slice_calibration_band: tuple[float, float] = (0.67, 1.5)
    slice_gini_floor: float = 0.2
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


def gini_floor(backtest: BacktestResult, floor: float) -> GateResult:
    gini = backtest.metrics[CANDIDATE]["normalized_gini"]
    return GateResult("gini_floor", bool(gini >= floor), f"normalized Gini {gini:.3f} (floor {floor})",
                      {"normalized_gini": gini, "floor": floor})


def calibration_band(backtest: BacktestResult, band: tuple[float, float]) -> GateResult:
    ratio = backtest.metrics[CANDIDATE]["calibration_ratio"]
    low, high = backtest.ci[CANDIDATE]["calibration_ratio"]
    passed = bool(band[0] <= ratio <= band[1])
    return GateResult("calibration", passed, f"predicted / actual {ratio:.3f} [95% {low:.3f}, {high:.3f}] "
                      f"(band {band[0]}-{band[1]})", {"calibration_ratio": ratio, "ci": [low, high], "band": list(band)})


def not_worse_than(backtest: BacktestResult, reference: str, tolerance: float, gate: str, label: str) -> GateResult:
    """Not worse on MAE at 95% (the paired interval of candidate - reference does not lie above zero) and
    normalized Gini not lower by more than `tolerance`."""
    mae = backtest.difference(CANDIDATE, reference, "mae")
    gini = backtest.difference(CANDIDATE, reference, "normalized_gini")
    mae_ok = not (mae["ci"][0] > 0)
    gini_ok = gini["difference"] >= -tolerance
    better = mae["ci"][1] < 0
    verdict = "better on MAE" if better else ("tie on MAE" if mae_ok else "worse on MAE")
    m, r = backtest.metrics[CANDIDATE], backtest.metrics[reference]
    detail = (f"MAE {m['mae']:,.2f} vs {label} {r['mae']:,.2f}, difference {mae['difference']:+,.2f} "
              f"[95% {mae['ci'][0]:+,.2f}, {mae['ci'][1]:+,.2f}] ({verdict}); normalized Gini {m['normalized_gini']:.3f} "
              f"vs {r['normalized_gini']:.3f}, difference {gini['difference']:+.3f} "
              f"[95% {gini['ci'][0]:+.3f}, {gini['ci'][1]:+.3f}] (tolerance {tolerance})")
    return GateResult(gate, bool(mae_ok and gini_ok), detail,
                      {"mae_difference": mae, "gini_difference": gini, "better_on_mae": bool(better),
                       "candidate": m, label.replace(" ", "_"): r})


def fairness(backtest: BacktestResult, column: str, config: GateConfig) -> GateResult:
    """Per slice: calibration within the band and Gini above the floor, or no worse than last year's spend
    on that slice (a slice the data make hard is not the model's fault)."""
    model = slice_table(backtest, CANDIDATE, column, config.min_slice_customers)
    base = slice_table(backtest, BASELINE, column, config.min_slice_customers)
    failing, shown = [], []
    low, high = config.slice_calibration_band
    for value, stats in model.items():
        ref = base.get(value, {})
        cal, gini = stats["calibration_ratio"], stats["normalized_gini"]
        cal_off = not (low <= cal <= high)
        if cal_off and ref and abs(np.log(cal)) > abs(np.log(ref["calibration_ratio"])) + 0.05:
            failing.append(f"{value}: calibration {cal:.2f} (last year's spend {ref['calibration_ratio']:.2f})")
        if gini < config.slice_gini_floor and ref and gini < ref["normalized_gini"] - config.gini_tolerance:
            failing.append(f"{value}: Gini {gini:.2f} (last year's spend {ref['normalized_gini']:.2f})")
        # a slice outside the band says what it was measured against, pass or fail
        against = (f" (outside {low}-{high}; last year's spend {ref['calibration_ratio']:.2f})"
                   if cal_off and ref else "")
        shown.append(f"{value} cal {cal:.2f}{against} Gini {gini:.2f}")
    detail = (f"{len(model)} {column} slices with at least {config.min_slice_customers} rows (calibration band "
              f"{low}-{high} and Gini floor {config.slice_gini_floor}, or no further off than last year's spend): "
              f"{', '.join(shown) or 'none'}" + (f"; failing: {'; '.join(failing)}" if failing else ""))
    return GateResult(f"fairness_{column}", not failing, detail, {"slices": model, "baseline_slices": base})


def evaluate_gates(backtest: BacktestResult, has_champion: bool, same_configuration: bool = False,
                   config: GateConfig | None = None) -> list[GateResult]:
    """Every gate for the candidate of a backtest (see the module docstring)."""
    config = config or GateConfig()
    results = [prediction_sanity(backtest.predictions[CANDIDATE]), gini_floor(backtest, config.gini_floor),
               calibration_band(backtest, config.calibration_band),
               not_worse_than(backtest, BASELINE, config.gini_tolerance, "beats_baseline", "last year's spend")]
    if has_champion and config.require_beating_champion:
        if same_configuration or CHAMPION not in backtest.predictions:
            results.append(GateResult("beats_champion", True, "same configuration as the champion, refit on newer "
                                      "data: the backtest cannot tell them apart (tie by construction)",
                                      {"same_configuration": True}))
        else:
            results.append(not_worse_than(backtest, CHAMPION, config.gini_tolerance, "beats_champion", "champion"))
    for column in config.slice_columns:
        if column in backtest.rows and backtest.rows[column].nunique() > 1:
            results.append(fairness(backtest, column, config))
    return results


def gates_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)


def as_dicts(results: list[GateResult]) -> list[dict]:
    return [asdict(r) for r in results]
