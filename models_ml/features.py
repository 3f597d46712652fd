"""Which columns of the dbt feature tables a model may use."""

from __future__ import annotations

import pandas as pd

KEY_COLUMNS = ("customer_id", "cutoff_date")
LABEL_COLUMNS = ("future_revenue", "future_orders_count", "horizon_days")
TARGET = "future_revenue"
# Columns that say when a row was taken rather than who the customer is: `observable_history_days` is the
# shop's age capped at a year, so in a young shop it numbers the training cutoffs, and a tree split on it
# sends every scored customer to the latest training cutoff's level (on a seasonal shop two years old it
# put the backtest's calibration at 0.34 at one origin). The offset model still reads it to annualise
# last year's spend; no model takes it as an input.
SHOP_CLOCK_COLUMNS = ("observable_history_days",)


def numeric_feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that are neither keys, labels nor the shop's clock, in table order."""
    excluded = set(KEY_COLUMNS) | set(LABEL_COLUMNS) | set(SHOP_CLOCK_COLUMNS)
    return [c for c in frame.columns if c not in excluded and pd.api.types.is_numeric_dtype(frame[c])]


def feature_matrix(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model input: the given columns as float64 (NULL -> NaN, which XGBoost treats as missing),
    rounded to 9 decimal places: the warehouse sums floats in parallel, in any order, and the last
    bits must not change which way a tree splits."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"feature table lacks column(s) the model needs: {', '.join(missing)}")
    return frame[list(columns)].astype("float64").round(9)
