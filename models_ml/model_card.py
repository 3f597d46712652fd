"""The model card logged with every training run: what the model is for, the data it saw, how well it
did (overall and by slice) and where it should not be trusted."""

from __future__ import annotations

import pandas as pd

from models_ml.metrics import full_report


def slice_table(holdout: pd.DataFrame, column: str, min_customers: int = 30) -> pd.DataFrame:
    """Holdout metrics per value of a slice column (values with fewer customers are left out)."""
    rows = []
    for value, group in holdout.groupby(column):
        if len(group) >= min_customers:
            rows.append({column: value, "customers": len(group), **full_report(group["actual"], group["predicted"])})
    return pd.DataFrame(rows)


def model_card(result, model_name: str, horizon_days: int, git_commit: str, data_hash: str) -> str:
    """Markdown model card of a TrainingResult (models_ml/training.py)."""
    def fmt(values: dict) -> str:
        shown = ("mae", "normalized_gini", "calibration_ratio")
        return ", ".join(f"{k} {values[k]:,.3f}" for k in shown if k in values) or "not available"

    backtest = result.backtest
    lines = [
        f"# Model card: {model_name}",
        "",
        "## Intended use",
        f"Rank customers and estimate their net revenue over the next {horizon_days} days, for marketing "
        "targeting and budget allocation. Not for decisions about individuals that need an explanation "
        "beyond the listed reasons, and not for customers without a purchase before the cutoff.",
        "",
        "## Data",
        f"- configuration: {result.spec['type']} {result.spec.get('params') or ''}",
        f"- training cutoffs (month ends with a full {horizon_days}-day label): {', '.join(result.train_cutoffs)}; "
        f"{result.rows_trained:,} customer snapshots",
        f"- label: net revenue in the {horizon_days} days after each cutoff, floored at 0",
        f"- features: {len(result.feature_columns)} numeric columns of customer_features",
        f"- training data hash: {data_hash}; code: git {git_commit}",
        "",
        "## Performance (strict rolling-origin backtest)",
    ]
    if backtest is None:
        lines.append("- none: the data are too short for a strict backtest")
    else:
        lines += [
            f"- origins {', '.join(backtest.origins)}, horizon {backtest.horizon_days} days, {len(backtest.rows):,} "
            "customer rows; each origin's model fit only on cutoffs whose label window ends by the origin"
            + (f" ({backtest.note})" if backtest.note else ""),
            f"- this configuration: {fmt(result.holdout_metrics)}",
            f"- last year's spend, same rows: {fmt(result.baseline_metrics)}",
        ]
        for column in ("country", "acquisition_channel"):
            holdout = result.holdout
            if holdout is not None and column in holdout and holdout[column].nunique() > 1:
                table = slice_table(holdout, column, 100)
                if not table.empty:
                    lines += ["", f"### By {column} (calibration = predicted / actual)", "",
                              table.round(3).to_markdown(index=False) if _has_tabulate() else table.round(3).to_string(index=False)]
    lines += [
        "",
        "## Limitations",
        "- Revenue is heavy-tailed: RMSE is dominated by a few large customers; read MAE and normalized Gini.",
        "- When the data are too short, the backtest runs at a shorter horizon than the served model's.",
        "- Seasonality between the training windows and the scoring window is learned only from the cutoffs' own "
        "history (last year's spend as the offset).",
    ]
    return "\n".join(lines) + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
