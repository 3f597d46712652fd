"""Which columns of the dbt feature tables a model may use, and what dbt's column docs say about them."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

# The feature table's column docs: dbt's YAML, the source of what dbt's manifest says about each column.
# (The SageMaker image copies it beside models_ml/, at the same relative place.)
FEATURE_DOCS = Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "marts" / "_marts.yml"

KEY_COLUMNS = ("customer_id", "cutoff_date")
LABEL_COLUMNS = ("future_revenue", "future_orders_count", "horizon_days")
TARGET = "future_revenue"


def numeric_feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that are neither keys nor labels, in table order."""
    excluded = set(KEY_COLUMNS) | set(LABEL_COLUMNS)
    return [c for c in frame.columns if c not in excluded and pd.api.types.is_numeric_dtype(frame[c])]


@lru_cache(maxsize=None)
def column_meta(model: str = "customer_features", docs: Path = FEATURE_DOCS) -> dict[str, dict]:
    """Each documented column of a dbt model with its `meta` (empty when it has none)."""
    models = {m["name"]: m for m in yaml.safe_load(docs.read_text())["models"]}
    return {c["name"]: (c.get("config") or {}).get("meta") or c.get("meta") or {} for c in models[model]["columns"]}


def history_length_dependent_columns() -> list[str]:
    """Totals that grow with the history before the cutoff (`config: {meta: {history_length_dependent: true}}`):
    early training cutoffs see less history than the scoring cutoff, so these shift between the two."""
    return [name for name, meta in column_meta().items() if meta.get("history_length_dependent")]


def feature_matrix(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model input: the given columns as float64 (NULL -> NaN, which XGBoost treats as missing),
    rounded to 9 decimal places: the warehouse sums floats in parallel, in any order, and the last
    bits must not change which way a tree splits."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"feature table lacks column(s) the model needs: {', '.join(missing)}")
    return frame[list(columns)].astype("float64").round(9)
