"""The model card logged with every training run: what the model is for, the data it saw, how well it
did (overall and by slice) and where it should not be trusted."""

from __future__ import annotations

import numpy as np
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
        choice, fallback = result.type_choice, result.fallback
        lines += [
            f"- origins {', '.join(backtest.origins)}, horizon {backtest.horizon_days} days, {len(backtest.rows):,} "
            "customer rows; each origin's model fit only on cutoffs whose label window ends by the origin"
            + (f" ({backtest.note})" if backtest.note else ""),
            f"- type chosen: {choice.get('chosen')} ({choice.get('why')}); rule: {choice.get('rule', '-')}",
            f"- fallback (served while no trained model passes): {fallback.get('label', fallback['type'])} "
            f"({fallback.get('why')})",
            "",
            markdown_table(pd.DataFrame([{"model": (f"{model_name} ({result.spec['type']})" if name == "candidate"
                                                    else name), "origin": origin, **_headline(values)}
                                         for name, origins in backtest.per_origin.items()
                                         for origin, values in [("mean", backtest.metrics[name]), *origins.items()]])),
        ]
        for column in ("country", "acquisition_channel"):
            holdout = result.holdout
            if holdout is not None and column in holdout and holdout[column].nunique() > 1:
                table = slice_table(holdout, column, 100)
                if not table.empty:
                    lines += ["", f"### By {column} (calibration = predicted / actual)", "", markdown_table(table)]
    checked = backtest.distribution.get("candidate") if backtest is not None else None
    if checked:
        lines += ["", "## How sure (the 80% interval, checked out of time)", "",
                  f"- {checked['method']}; {checked['note']}.", "",
                  markdown_table(pd.DataFrame([{"scope": f"origin {o}", **_interval(v)} for o, v in checked["per_origin"].items()]
                                              + [{"scope": f"tier {t}", **_interval(v)} for t, v in checked["by_tier"].items()]))]
        forecast = (result.predictive or {}).get("forecast_backtest", {})
        if forecast.get("all"):
            lines += ["", "The whole base's total, each origin's 80% interval built from the other origins:", "",
                      markdown_table(pd.DataFrame(forecast["all"]))]
    lines += [
        "",
        "## Limitations",
        "- Revenue is heavy-tailed: RMSE is dominated by a few large customers; the models predict a mean, so "
        "the Poisson deviance decides and MAE (which rewards predicting 0 for most customers) is only shown.",
        "- When the data are too short, the backtest runs at a shorter horizon than the served model's.",
        "- Seasonality between the training windows and the scoring window is learned only from the cutoffs' own "
        "history (last year's spend as the offset).",
    ]
    return "\n".join(lines) + "\n"


def _interval(values: dict) -> dict:
    return {"rows": values.get("rows"), "coverage of the 80% interval": values.get("coverage_80"),
            "mean width": values.get("mean_width_80"), "CRPS": values.get("crps")}


def _headline(values: dict) -> dict:
    return {"Poisson deviance": values.get("deviance"), "normalized Gini": values.get("normalized_gini"),
            "calibration": values.get("calibration_ratio"),
            "decile calibration error": values.get("decile_calibration_error"), "MAE": values.get("mae")}


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (MLflow's artifact viewer renders it); numbers rounded,
    thousands separated, missing values empty, pipes in text escaped."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return ""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{int(value):,}"
        if isinstance(value, (float, np.floating)):
            return f"{float(value):,.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
