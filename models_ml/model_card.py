"""The model card logged with every training run: what the model is for, the data it saw, how well it
did (overall and by slice) and where it should not be trusted."""

from __future__ import annotations

import pandas as pd

from models_ml.gradient_boosting import TrainingResult
from models_ml.metrics import disparate_impact_ratio, full_report


def slice_table(holdout: pd.DataFrame, column: str, min_customers: int = 30) -> pd.DataFrame:
    """Holdout metrics per value of a slice column (values with fewer customers are left out)."""
    rows = []
    for value, group in holdout.groupby(column):
        if len(group) >= min_customers:
            rows.append({column: value, "customers": len(group), **full_report(group["actual"], group["predicted"])})
    return pd.DataFrame(rows)


def model_card(result: TrainingResult, model_name: str, horizon_days: int, git_commit: str, data_hash: str) -> str:
    def fmt(values: dict) -> str:
        return ", ".join(f"{k} {v:,.3f}" for k, v in values.items()) or "not available (one training cutoff)"

    lines = [
        f"# Model card: {model_name}",
        "",
        "## Intended use",
        f"Rank customers and estimate their net revenue over the next {horizon_days} days, for marketing "
        "targeting and budget allocation. Not for decisions about individuals that need an explanation "
        "beyond the listed reasons, and not for customers without a purchase before the cutoff.",
        "",
        "## Data",
        f"- training cutoffs: {', '.join(result.train_cutoffs)}; {result.rows_trained:,} customer snapshots",
        f"- label: net revenue in the {horizon_days} days after each cutoff, floored at 0",
        f"- features: {len(result.feature_columns)} numeric columns of customer_features",
        f"- training data hash: {data_hash}; code: git {git_commit}",
        "",
        "## Performance",
        f"- holdout (cutoff {result.holdout_cutoff}, {result.rows_holdout:,} customers): {fmt(result.holdout_metrics)}",
        f"- baseline, last year's spend, same holdout: {fmt(result.baseline_metrics)}",
    ]
    if result.holdout is not None:
        for column in ("country", "acquisition_channel"):
            if column in result.holdout and result.holdout[column].nunique() > 1:
                table = slice_table(result.holdout, column)
                if not table.empty:
                    ratio = disparate_impact_ratio(result.holdout["predicted"], result.holdout[column])
                    lines += ["", f"### By {column} (disparate-impact ratio of mean prediction: {ratio:.3f})", "",
                              table.round(3).to_markdown(index=False) if _has_tabulate() else table.round(3).to_string(index=False)]
    lines += [
        "",
        "## Limitations",
        "- The holdout is the latest training cutoff, scored by a model fit on the earlier ones; their label "
        "windows overlap the holdout's, so it is an out-of-time check, not a strict backtest "
        "(`clv bench accuracy` runs the strict one).",
        "- Revenue is heavy-tailed: RMSE is dominated by a few large customers; read MAE and normalized Gini.",
        "- Seasonality and growth between the training windows and the scoring window are not modelled.",
    ]
    return "\n".join(lines) + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
