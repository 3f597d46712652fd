"""Promotion gates, decided on the strict backtest (models_ml/protocol.py): every gate compares like with
like (models refit on the same training cutoffs, scored on the same out-of-time rows, paired intervals)
and reports pass/fail with the numbers behind it.

Every gate judges the candidate against the alternative: what would be served if the candidate were
rejected (the champion when there is one, else the fallback: the best label-free model of the
backtest, `choose_fallback`). A decision never serves something worse than what it rejects:

- Not worse than the alternative on the primary score (the paired interval of the Poisson deviance
  difference does not lie above zero) and normalized Gini not lower by more than `gini_tolerance`;
  MAE is shown, not decided on.
- Calibrated: predicted / actual within the band, or no further from 1 than the alternative's (a
  model 0.75 off in level is not rejected for a fallback that is 1.45 off).
- Not worse at the latest origin (the one with the most training data): the deviance difference's
  interval at that origin alone does not lie above zero.
- Fairness by slice (country, channel): each slice's calibration relative to the model's overall
  calibration within a band (a level error common to every slice is the calibration gate's, not a
  slice's) and its normalized Gini above a floor, unless the alternative does no better on that slice.
- Intervals that hold: the coverage of the predictive distribution's central 80% interval (each origin
  checked with what the other origins taught, models_ml/spread.py) within `coverage_band`, or no
  further from 0.8 than the alternative's.
- A later version is also compared with the fallback (`beats_baseline`), so a champion is never a model
  that the label-free models beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from models_ml.metrics import calibration_ratio
from models_ml.protocol import BASELINE, BacktestResult, slice_table

CANDIDATE, CHAMPION = "candidate", "champion"
FALLBACK_LABELS = {"last_period": "last year's spend", "last_period_scaled": "last year's spend scaled out of time",
                   "bgnbd_gg": "BG/NBD + Gamma-Gamma", "paretonbd_gg": "Pareto/NBD + Gamma-Gamma", CHAMPION: "champion"}


def label_of(name: str) -> str:
    return FALLBACK_LABELS.get(name, name)


@dataclass
class GateConfig:
    gini_floor: float = 0.3
    gini_tolerance: float = 0.01
    calibration_band: tuple[float, float] = (0.8, 1.25)
    coverage_band: tuple[float, float] = (0.75, 0.85)
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


def calibration_band(backtest: BacktestResult, band: tuple[float, float], alternative: str | None = None) -> GateResult:
    """Predicted / actual within the band, or no further from 1 (in log terms) than the alternative's."""
    ratio = backtest.metrics[CANDIDATE]["calibration_ratio"]
    low, high = backtest.ci[CANDIDATE].get("calibration_ratio", [np.nan, np.nan])
    within = bool(band[0] <= ratio <= band[1])
    alt = backtest.metrics[alternative]["calibration_ratio"] if alternative in backtest.metrics else np.nan
    closer = bool(np.isfinite(alt) and alt > 0 and ratio > 0 and abs(np.log(ratio)) <= abs(np.log(alt)))
    detail = f"predicted / actual {ratio:.3f} [95% {low:.3f}, {high:.3f}] (band {band[0]}-{band[1]})"
    if not within and np.isfinite(alt):
        detail += (f"; outside the band, {'no further off than' if closer else 'further off than'} "
                   f"{label_of(alternative)} at {alt:.3f}")
    return GateResult("calibration", within or closer, detail,
                      {"calibration_ratio": ratio, "ci": [low, high], "band": list(band), "alternative": alternative,
                       "alternative_calibration_ratio": alt})


def coverage(backtest: BacktestResult, band: tuple[float, float], alternative: str | None = None) -> GateResult:
    """The 80% interval's out-of-time coverage (mean over origins) within the band, or no further from 0.8
    than the alternative's (whose intervals would be published instead)."""
    measured = backtest.distribution.get(CANDIDATE, {})
    value = measured.get("overall", {}).get("coverage_80", np.nan)
    per_origin = ", ".join(f"{o} {v['coverage_80']:.3f}" for o, v in measured.get("per_origin", {}).items())
    alt = backtest.distribution.get(alternative, {}).get("overall", {}).get("coverage_80", np.nan)
    if not np.isfinite(value):
        return GateResult("coverage", False, "no predictive distribution measured: coverage unknown",
                          {"coverage_80": value, "band": list(band)})
    target = (band[0] + band[1]) / 2
    within = bool(band[0] <= value <= band[1])
    closer = bool(np.isfinite(alt) and abs(value - target) <= abs(alt - target))
    detail = f"80% interval coverage {value:.3f} (by origin {per_origin}; band {band[0]}-{band[1]})"
    if not within and np.isfinite(alt):
        detail += f"; outside the band, {'no further off than' if closer else 'further off than'} {label_of(alternative)} at {alt:.3f}"
    return GateResult("coverage", within or closer, detail,
                      {"coverage_80": value, "band": list(band), "alternative": alternative, "alternative_coverage_80": alt,
                       "per_origin": {o: v["coverage_80"] for o, v in measured.get("per_origin", {}).items()}})


def _interval_text(difference: dict, fmt: str) -> str:
    low, high = difference["ci"]
    return f"{difference['difference']:{fmt}} [95% {low:{fmt}}, {high:{fmt}}]"


def not_worse_than(backtest: BacktestResult, reference: str, tolerance: float, gate: str, label: str | None = None) -> GateResult:
    """Not worse on the Poisson deviance at 95% (the paired interval of candidate - reference does not lie
    above zero; an interval that cannot be computed fails) and normalized Gini not lower by more than
    `tolerance`. MAE is shown beside them."""
    label = label or label_of(reference)
    deviance = backtest.difference(CANDIDATE, reference, "deviance")
    gini = backtest.difference(CANDIDATE, reference, "normalized_gini")
    mae = backtest.difference(CANDIDATE, reference, "mae")
    low, high = deviance["ci"]
    measured = bool(np.isfinite(low) and np.isfinite(high))
    deviance_ok = measured and not low > 0
    gini_ok = gini["difference"] >= -tolerance
    better = measured and high < 0
    verdict = ("no paired interval: not compared" if not measured else
               "better on deviance" if better else ("tie on deviance" if deviance_ok else "worse on deviance"))
    m, r = backtest.metrics[CANDIDATE], backtest.metrics[reference]
    detail = (f"Poisson deviance {m['deviance']:,.2f} vs {label} {r['deviance']:,.2f}, difference "
              f"{_interval_text(deviance, '+,.2f')} ({verdict}); normalized Gini {m['normalized_gini']:.3f} vs "
              f"{r['normalized_gini']:.3f}, difference {_interval_text(gini, '+.3f')} (tolerance {tolerance}); "
              f"MAE {m['mae']:,.2f} vs {r['mae']:,.2f} (reported, not decided on)")
    return GateResult(gate, bool(deviance_ok and gini_ok), detail,
                      {"deviance_difference": deviance, "gini_difference": gini, "mae_difference": mae,
                       "better_on_deviance": bool(better), "candidate": m, "reference": reference, "reference_metrics": r})


def latest_origin(backtest: BacktestResult, alternative: str) -> GateResult:
    """At the latest origin alone, the deviance difference to the alternative must not lie above zero."""
    difference = backtest.latest_difference(CANDIDATE, alternative, "deviance")
    low, high = difference["ci"]
    measured = bool(np.isfinite(low) and np.isfinite(high))
    passed = measured and not low > 0
    at = backtest.per_origin[CANDIDATE][difference["origin"]]
    alt = backtest.per_origin[alternative][difference["origin"]]
    detail = (f"at {difference['origin']}: deviance {at['deviance']:,.2f} vs {label_of(alternative)} {alt['deviance']:,.2f}, "
              f"difference {_interval_text(difference, '+,.2f')}; calibration {at['calibration_ratio']:.3f} vs "
              f"{alt['calibration_ratio']:.3f}" + ("" if measured else " (no interval: not compared)"))
    return GateResult("latest_origin", passed, detail, {"difference": difference, "candidate": at, "alternative": alt})


def fairness(backtest: BacktestResult, column: str, config: GateConfig, alternative: str = BASELINE) -> GateResult:
    """Per slice: calibration relative to the model's own overall calibration within the band (the overall
    level is the calibration gate's; a slice gate asks whether a slice is treated differently) and Gini
    above the floor, or no worse than the alternative on that slice, measured the same way (a slice the
    data make hard is not the model's fault)."""
    model = slice_table(backtest, CANDIDATE, column, config.min_slice_customers)
    base = slice_table(backtest, alternative, column, config.min_slice_customers)
    y = backtest.rows["actual"].to_numpy(float)
    level = calibration_ratio(y, backtest.predictions[CANDIDATE])
    base_level = calibration_ratio(y, backtest.predictions[alternative]) if alternative in backtest.predictions else np.nan
    label = label_of(alternative)
    failing, shown = [], []
    low, high = config.slice_calibration_band
    for value, stats in model.items():
        ref = base.get(value, {})
        cal, gini = stats["calibration_ratio"] / level, stats["normalized_gini"]
        ref_cal = ref["calibration_ratio"] / base_level if ref else np.nan
        cal_off = not (low <= cal <= high)
        if cal_off and ref and abs(np.log(cal)) > abs(np.log(ref_cal)) + 0.05:
            failing.append(f"{value}: calibration {cal:.2f} of the overall ({label} {ref_cal:.2f})")
        if gini < config.slice_gini_floor and ref and gini < ref["normalized_gini"] - config.gini_tolerance:
            failing.append(f"{value}: Gini {gini:.2f} ({label} {ref['normalized_gini']:.2f})")
        # a slice outside the band says what it was measured against, pass or fail
        against = f" (outside {low}-{high}; {label} {ref_cal:.2f})" if cal_off and ref else ""
        shown.append(f"{value} cal {cal:.2f}{against} Gini {gini:.2f}")
    detail = (f"{len(model)} {column} slices with at least {config.min_slice_customers} rows (calibration relative "
              f"to the overall {level:.2f} within {low}-{high} and Gini floor {config.slice_gini_floor}, or no further "
              f"off than {label}): {', '.join(shown) or 'none'}" + (f"; failing: {'; '.join(failing)}" if failing else ""))
    return GateResult(f"fairness_{column}", not failing, detail,
                      {"slices": model, "baseline_slices": base, "alternative": alternative, "overall_calibration": level,
                       "alternative_overall_calibration": base_level})


def alternative_of(backtest: BacktestResult, has_champion: bool, fallback: str = BASELINE) -> str:
    """What would be served if the candidate were rejected: the champion, else the fallback."""
    return CHAMPION if has_champion and CHAMPION in backtest.predictions else fallback


def evaluate_gates(backtest: BacktestResult, has_champion: bool, same_configuration: bool = False,
                   config: GateConfig | None = None, fallback: str = BASELINE) -> list[GateResult]:
    """Every gate for the candidate of a backtest, against the alternative (see the module docstring)."""
    config = config or GateConfig()
    alternative = alternative_of(backtest, has_champion, fallback)
    results = [prediction_sanity(backtest.predictions[CANDIDATE]), gini_floor(backtest, config.gini_floor),
               calibration_band(backtest, config.calibration_band, alternative),
               coverage(backtest, config.coverage_band, alternative),
               not_worse_than(backtest, fallback, config.gini_tolerance, "beats_baseline")]
    if has_champion and config.require_beating_champion:
        if CHAMPION not in backtest.predictions:
            results.append(GateResult("beats_champion", False, "the champion was not scored in this backtest: the "
                                      "candidate cannot be compared with it", {"same_configuration": same_configuration}))
        else:
            champion = not_worse_than(backtest, CHAMPION, config.gini_tolerance, "beats_champion")
            if same_configuration:
                champion.detail += " (same configuration as the champion, refit on the same cutoffs)"
            results.append(champion)
    if backtest.latest_origin_ci:
        results.append(latest_origin(backtest, alternative))
    for column in config.slice_columns:
        if column in backtest.rows and backtest.rows[column].nunique() > 1:
            results.append(fairness(backtest, column, config, alternative))
    return results


def choose_fallback(backtest: BacktestResult, candidates=("last_period", "last_period_scaled", "bgnbd_gg", "paretonbd_gg"),
                    default: str = BASELINE) -> tuple[str, str]:
    """The label-free model to serve while no trained model passes: the one with the lowest Poisson deviance
    among those whose deviance difference to `default` has an interval below zero, else `default` (a tie
    keeps it). Returns (name, why)."""
    present = [c for c in candidates if c in backtest.metrics and c != default]
    better = [c for c in present if backtest.ci.get(c, {}).get(f"deviance_diff_vs_{default}", [np.nan] * 2)[1] < 0]
    shown = "; ".join(f"{label_of(c)} {backtest.metrics[c]['deviance']:,.2f} (calibration "
                      f"{backtest.metrics[c]['calibration_ratio']:.3f})" for c in [default, *present])
    if not better:
        return default, (f"{label_of(default)}: no label-free model beat it on Poisson deviance with an interval "
                         f"below zero ({shown})")
    best = min(better, key=lambda c: backtest.metrics[c]["deviance"])
    diff = backtest.difference(best, default, "deviance")
    return best, (f"{label_of(best)}: lowest Poisson deviance, {_interval_text(diff, '+,.2f')} vs "
                  f"{label_of(default)} ({shown})")


def gates_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)


def as_dicts(results: list[GateResult]) -> list[dict]:
    return [asdict(r) for r in results]
