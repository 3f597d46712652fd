"""Turn predictions into the score table marketing reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

TIERS = ("low", "medium", "high")


def assign_tiers(values, high_share: float = 0.2, medium_share: float = 0.3) -> np.ndarray:
    """Tier by rank of predicted value: the top `high_share` of customers are high, the next
    `medium_share` medium, the rest low. Equal predictions share a tier, the tier of the middle of their
    block of ranks, so the tier never depends on row order and a large block of equal predictions does not
    take the tier of its best-ranked member; a prediction of 0 is always low. Shares are exact when there
    are no ties."""
    if not (0 <= high_share <= 1 and 0 <= medium_share <= 1 and high_share + medium_share <= 1):
        raise ValueError(f"tier shares must be in [0, 1] and sum to at most 1 (got {high_share}, {medium_share})")
    values = pd.Series(np.asarray(values, float))
    top_fraction = values.rank(method="average", ascending=False) / max(len(values), 1)
    tiers = np.where(top_fraction <= high_share, "high", np.where(top_fraction <= high_share + medium_share, "medium", "low"))
    return np.where(values.to_numpy() <= 0, "low", tiers).astype(object)


DISTRIBUTION_COLUMNS = ("p_no_purchase", "predicted_clv_p10", "predicted_clv_p50", "predicted_clv_p90")
DEFAULT_MAX_PREDICTION_MULTIPLE = 10.0


class ImplausibleScoresError(ValueError):
    """Predictions that must not reach marketing: non-finite, negative, or far beyond any spend seen."""


def check_publishable(customer_ids, predictions, last_year_spend, horizon_days: int,
                      max_multiple: float = DEFAULT_MAX_PREDICTION_MULTIPLE) -> None:
    """Stop the publish when a prediction is not finite, is negative, or exceeds `max_multiple` times the
    largest yearly spend observed among the customers scored (scaled to the horizon; at least 1).
    The message names how many, the worst value and its customer."""
    predictions = np.asarray(predictions, float)
    ids = pd.Series(customer_ids, dtype="string").to_numpy(object)
    spend = np.nan_to_num(np.asarray(last_year_spend, float), nan=0.0, posinf=0.0, neginf=0.0)
    largest = max(float(spend.max(initial=0.0)) * horizon_days / 365.0, 1.0)
    bound = max_multiple * largest
    problems = []
    for label, bad in (("not finite", ~np.isfinite(predictions)),
                       ("negative", np.isfinite(predictions) & (predictions < 0)),
                       (f"above {max_multiple:g}x the largest yearly spend observed ({largest:,.2f}; bound {bound:,.2f})",
                        np.isfinite(predictions) & (predictions > bound))):
        if bad.any():
            worst = int(np.flatnonzero(bad)[np.argmax(np.nan_to_num(np.abs(predictions[bad]), nan=np.inf))])
            problems.append(f"{int(bad.sum()):,} of {len(predictions):,} predictions {label}, e.g. "
                            f"customer {ids[worst]}: {predictions[worst]:,.6g}")
    if problems:
        raise ImplausibleScoresError(
            "scores not published, clv_scores keeps the previous run: " + "; ".join(problems)
            + " (rule: predictions finite, >= 0 and at most max_prediction_multiple x the largest yearly "
              "spend; check the inputs and the model, or raise max_prediction_multiple in the settings file)")


def discount_factor(horizon_days: int, annual_rate: float | None) -> float:
    """The present value of 1 of revenue earned evenly over the horizon, discounted continuously at the
    annual rate r: (1 - (1 + r)^-T) / (T ln(1 + r)) for T = horizon_days / 365 years; 1 at r = 0."""
    if not annual_rate:
        return 1.0
    years = horizon_days / 365.0
    growth = np.log1p(annual_rate)
    return float((1 - np.exp(-growth * years)) / (years * growth))


def discounted_margin_value(predictions, horizon_days: int, margin_rate: float | None,
                            annual_rate: float | None = None):
    """Predicted revenue x margin rate x `discount_factor`: what a customer is worth, not what they spend
    (None without a margin rate)."""
    if margin_rate is None:
        return None
    return np.asarray(predictions, float) * margin_rate * discount_factor(horizon_days, annual_rate)


def build_score_table(customer_ids, cutoff_date, predictions, model_name: str, model_version: str,
                      scored_at: pd.Timestamp, high_share: float = 0.2, medium_share: float = 0.3,
                      p_alive=None, expected_orders=None, reasons=None,
                      reason_contributions=None, distribution: pd.DataFrame | None = None,
                      value=None, horizon_days: int | None = None) -> pd.DataFrame:
    """The `clv_scores` rows for one scoring run (reasons: models_ml/reasons.py; `distribution`: the
    columns of models_ml/spread.distribution_columns; `value`: `discounted_margin_value`)."""
    predictions = np.asarray(predictions, float)
    if np.isnan(predictions).any():
        raise ValueError(f"{int(np.isnan(predictions).sum())} predictions are NaN; refusing to publish scores")
    n = len(predictions)

    def optional(values, dtype):
        # NaN (undefined, e.g. P(alive) where the model cannot be evaluated) lands as NULL
        return np.full(n, None, dtype=object) if values is None else np.asarray(values, dtype)

    return pd.DataFrame(
        {
            "customer_id": pd.Series(customer_ids, dtype="string").to_numpy(object),
            "cutoff_date": pd.to_datetime(cutoff_date).date(),
            "predicted_clv_12m": predictions,
            **{column: optional(None if distribution is None else distribution[column].to_numpy(), float)
               for column in DISTRIBUTION_COLUMNS},
            "discounted_margin_value": optional(value, float),
            "clv_tier": assign_tiers(predictions, high_share, medium_share),
            "p_alive": optional(p_alive, float),
            "expected_orders_12m": optional(expected_orders, float),
            "top_reasons": optional(reasons, object),
            "reason_contributions": optional(reason_contributions, object),
            "model_name": model_name,
            "model_version": str(model_version),
            "scored_at": scored_at,
            "horizon_days": optional(None if horizon_days is None else np.full(n, int(horizon_days)), "int64"),
        }
    )
