"""The weekly run's summary as text: what `clv run` prints and the flow's Prefect artifact shows."""

from __future__ import annotations

from models_ml.gates import label_of
from models_ml.protocol import BASELINE

METRICS = (("deviance", "deviance", "{:,.1f}"), ("normalized_gini", "Gini", "{:.3f}"),
           ("calibration_ratio", "calibration", "{:.3f}"), ("mae", "MAE", "{:,.1f}"))


def _metric_line(name: str, metrics: dict, ci: dict, reference: str | None = None) -> str:
    parts = []
    for key, label, fmt in METRICS:
        value = fmt.format(metrics[key])
        low, high = ci.get(key, [float("nan")] * 2)
        text = f"{label} {value} [{fmt.format(low)}, {fmt.format(high)}]"
        diff = ci.get(f"{key}_diff_vs_{reference}") if reference else None
        if diff:
            text += f" (vs {reference}: [{fmt.format(diff[0])}, {fmt.format(diff[1])}])"
        parts.append(text)
    return f"  - {name}: " + "; ".join(parts)


def _origins_line(name: str, per_origin: dict) -> str:
    return f"    {name} by origin: " + "; ".join(
        f"{origin} deviance {m['deviance']:,.1f}, Gini {m['normalized_gini']:.3f}, calibration {m['calibration_ratio']:.3f}"
        for origin, m in per_origin.items())


OUTCOME_TEXT = {
    "champion": "passed every gate: now champion",
    "not_served": "failed the gates: NOT served; the fallback is served until a model passes",
    "challenger": "passed every gate: now challenger (promotion: clv promote)",
    "rejected": "failed the gates: registered, not challenger",
    "no_change": "no change",
}


def _distribution_lines(summary: dict) -> list[str]:
    """The base's forecast with its interval, and how the served model's intervals held out of time."""
    low, high = summary.get("predicted_total_interval") or (None, None)
    total = f"- predicted revenue over the next {summary['horizon_days']} days: {summary.get('predicted_total', 0):,.0f}"
    distribution = summary.get("distribution")
    if low is None or distribution is None:
        return [total + " (no 80% interval: the served model has no backtested predictive distribution yet)"]
    held = [h for h in distribution["forecast_held"] if h is not None]
    lines = [total + f" [80% interval {low:,.0f} .. {high:,.0f}; {summary.get('interval_note')}; built from the other "
             f"origins, it held the realised total at {sum(held)} of {len(held)} backtest origins, median width "
             f"{distribution['forecast_median_width_share'] or float('nan'):.2f}x the total] (clv_forecast: by tier, "
             "country and channel too)"]
    checked = distribution["checked"]
    line = (f"- per-customer 80% intervals (clv_scores.predicted_clv_p10 .. p90): coverage "
            f"{checked.get('coverage_80', float('nan')):.3f} out of time, mean width {checked.get('mean_width_80', float('nan')):,.0f}, "
            f"CRPS {checked.get('crps', float('nan')):,.1f}; P(no purchase) {checked.get('p_no_purchase', float('nan')):.3f} "
            f"predicted vs {checked.get('share_no_purchase', float('nan')):.3f} observed")
    if distribution["horizon_days"] != summary["horizon_days"]:
        line += (f" (learned at the backtest's {distribution['horizon_days']} days and applied to {summary['horizon_days']}-day "
                 f"predictions: P(no purchase) is the {distribution['horizon_days']}-day one, an upper bound, and the "
                 "intervals are wider than a full-horizon backtest would make them)")
    return [*lines, line]


def format_summary(summary: dict) -> str:
    """The run summary printed by `clv run` and shown as a Prefect artifact."""
    plan = summary["plan"]
    lines = [
        f"Weekly CLV run, cutoff {summary['cutoff']} (horizon {summary['horizon_days']} days)",
        f"- customers scored: {summary['customers_scored']:,} by {summary['served_model']} version "
        f"{summary['model_version']} (tiers: {', '.join(f'{k} {v:,}' for k, v in sorted(summary['tiers'].items()))})"
        + (f"; fallback: {summary['served_why']}" if summary.get("served_why") else ""),
    ]
    lines += _distribution_lines(summary)
    decision = summary.get("decision")
    if decision is None:
        lines.append("- no training this run: a champion serves (retraining runs on a drift alert or performance "
                     "drop, or with --retrain)")
    else:
        lines.append(f"- trained version {decision['version']}: {OUTCOME_TEXT[decision['outcome']]}"
                     + (f" ({decision['reason']})" if decision["outcome"] in ("no_change", "not_served", "rejected") else ""))
        if decision.get("type_choice"):
            lines.append(f"- model type: {decision['model_type']} ({decision['type_choice'].get('why')}; rule: "
                         f"{decision['type_choice'].get('rule', '-')})")
        if decision.get("fallback"):
            lines.append(f"- fallback while no model passes: {decision['fallback'].get('why')}")
        backtest = decision.get("backtest")
        if backtest:
            fallback = (decision.get("fallback") or {}).get("type", BASELINE)
            lines.append(f"- strict backtest at {backtest['horizon_days']} days, origins {', '.join(backtest['origins'])}, "
                         f"{backtest['rows']:,} customer rows; mean over origins [95% paired bootstrap over customers "
                         f"and origins]; differences vs {label_of(fallback)}:")
            if backtest.get("note"):
                lines.append(f"  ({backtest['note']})")
            for name in backtest["metrics"]:
                reference = fallback if name != fallback else None
                lines.append(_metric_line(name, backtest["metrics"][name], backtest["ci"][name], reference))
            for name in dict.fromkeys(["candidate", fallback, *(["champion"] if "champion" in backtest["metrics"] else [])]):
                if name in backtest.get("per_origin", {}):
                    lines.append(_origins_line(name, backtest["per_origin"][name]))
        for gate in decision.get("gates", []):
            lines.append(f"  - gate {gate['gate']}: {'pass' if gate['passed'] else 'FAIL'} ({gate['detail']})")
    lines += [
        f"- training snapshots: {len(plan['serving_cutoffs'])} month-end cutoffs with a full {plan['horizon_days']}-day "
        f"label ({plan['serving_cutoffs'][0] if plan['serving_cutoffs'] else '-'} .. "
        f"{plan['serving_cutoffs'][-1] if plan['serving_cutoffs'] else '-'})",
        f"- warehouse: {summary['warehouse']} (table clv_scores); export: {summary.get('scores_export')}",
        f"- MLflow store: {summary['mlflow_tracking_uri']}",
    ]
    return "\n".join(lines)
