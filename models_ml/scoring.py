"""Turn predictions into the score table marketing reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

TIERS = ("low", "medium", "high")


def assign_tiers(values, high_share: float = 0.2, medium_share: float = 0.3) -> np.ndarray:
    """Tier by rank of predicted value: the top `high_share` of customers are high, the next
    `medium_share` medium, the rest low. Ties are broken by position, so shares are exact."""
    if not (0 <= high_share <= 1 and 0 <= medium_share <= 1 and high_share + medium_share <= 1):
        raise ValueError(f"tier shares must be in [0, 1] and sum to at most 1 (got {high_share}, {medium_share})")
    values = pd.Series(np.asarray(values, float))
    top_fraction = values.rank(method="first", ascending=False) / max(len(values), 1)
    tiers = np.where(top_fraction <= high_share, "high", np.where(top_fraction <= high_share + medium_share, "medium", "low"))
    return tiers.astype(object)


def build_score_table(customer_ids, cutoff_date, predictions, model_name: str, model_version: str,
                      scored_at: pd.Timestamp, high_share: float = 0.2, medium_share: float = 0.3) -> pd.DataFrame:
    """The `clv_scores` rows for one scoring run."""
    predictions = np.asarray(predictions, float)
    if np.isnan(predictions).any():
        raise ValueError(f"{int(np.isnan(predictions).sum())} predictions are NaN; refusing to publish scores")
    return pd.DataFrame(
        {
            "customer_id": pd.Series(customer_ids, dtype="string").to_numpy(object),
            "cutoff_date": pd.to_datetime(cutoff_date).date(),
            "predicted_clv_12m": predictions,
            "clv_tier": assign_tiers(predictions, high_share, medium_share),
            "model_name": model_name,
            "model_version": str(model_version),
            "scored_at": scored_at,
        }
    )
