"""The weekly run's summary as text: what `clv run` prints and the flow's Prefect artifact shows."""

from __future__ import annotations

from models_ml.protocol import BASELINE


def _metric_line(name: str, metrics: dict, ci: dict, reference: str | None = None) -> str:
    parts = []
    for key, label, fmt in (("mae", "MAE", "{:,.1f}"), ("normalized_gini", "Gini", "{:.3f}"),
                            ("calibration_ratio", "calibration", "{:.3f}")):
        value = fmt.format(metrics[key])
        low, high = ci.get(key, [float("nan")] * 2)
        text = f"{label} {value} [{fmt.format(low)}, {fmt.format(high)}]"
        diff = ci.get(f"{key}_diff_vs_{reference}") if reference else None
        if diff:
            text += f" (vs {reference}: [{fmt.format(diff[0])}, {fmt.format(diff[1])}])"
        parts.append(text)
    return f"  - {name}: " + "; ".join(parts)


OUTCOME_TEXT = {
    "champion": "passed every gate: now champion",
    "not_served": "did not beat last year's spend: NOT served; last year's spend is served until a model passes",
    "challenger": "passed every gate: now challenger (promotion: clv promote)",
    "rejected": "failed the gates: registered, not challenger",
    "no_change": "no change",
}


def format_summary(summary: dict) -> str:
    """The run summary printed by `clv run` and shown as a Prefect artifact."""
    plan = summary["plan"]
    lines = [
        f"Weekly CLV run, cutoff {summary['cutoff']} (horizon {summary['horizon_days']} days)",
        f"- customers scored: {summary['customers_scored']:,} by {summary['served_model']} version "
        f"{summary['model_version']} (tiers: {', '.join(f'{k} {v:,}' for k, v in sorted(summary['tiers'].items()))})",
    ]
    decision = summary.get("decision")
    if decision is None:
        lines.append("- no training this run: a champion serves (retraining runs on a drift alert or performance "
                     "drop, or with --retrain)")
    else:
        lines.append(f"- trained version {decision['version']}: {OUTCOME_TEXT[decision['outcome']]}"
                     + (f" ({decision['reason']})" if decision["outcome"] in ("no_change", "not_served", "rejected") else ""))
        backtest = decision.get("backtest")
        if backtest:
            lines.append(f"- strict backtest at {backtest['horizon_days']} days, origins {', '.join(backtest['origins'])}, "
                         f"{backtest['rows']:,} customer rows; mean over origins [95% paired bootstrap]:")
            if backtest.get("note"):
                lines.append(f"  ({backtest['note']})")
            for name in backtest["metrics"]:
                reference = BASELINE if name != BASELINE else None
                lines.append(_metric_line(name, backtest["metrics"][name], backtest["ci"][name], reference))
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
