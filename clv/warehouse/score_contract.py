"""The score tables' contract: the columns of `clv_scores` (and its history) and their types, as declared
for BI in dbt's `marts/_scores.yml`. Publishing conforms the rows to it, so BI reads the same table shape
on every engine and every week: declared columns in order and typed (a column a run does not compute, such
as P(alive) without a BTYD fit, is NULL of its type, not text), an undeclared column refused by name."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

SCORES_YML = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts" / "_scores.yml"
_TYPE_NAMES = {
    "duckdb": {"text": "VARCHAR", "date": "DATE", "float8": "DOUBLE", "timestamp": "TIMESTAMP", "bigint": "BIGINT"},
    "postgres": {"text": "text", "date": "date", "float8": "double precision", "timestamp": "timestamp",
                 "bigint": "bigint"},
    "redshift": {"text": "varchar(65535)", "date": "date", "float8": "double precision", "timestamp": "timestamp",
                 "bigint": "bigint"},
}


class ScoreContractError(ValueError):
    """Score rows that do not fit the declared score table."""


@lru_cache(maxsize=None)
def score_columns(path: Path = SCORES_YML, table: str = "clv_scores") -> tuple[tuple[str, str], ...]:
    """(name, declared type) of every column of a published table (clv_scores, clv_forecast), in order."""
    source = next(s for s in yaml.safe_load(path.read_text())["sources"] if s["name"] == "clv")
    declared = next(t for t in source["tables"] if t["name"] == table)
    return tuple((c["name"], c["data_type"]) for c in declared["columns"])


def column_types(dialect: str, table: str = "clv_scores") -> list[tuple[str, str]]:
    """(name, the engine's type name) of every column of a published table, for its DDL."""
    return [(name, _TYPE_NAMES[dialect][kind]) for name, kind in score_columns(SCORES_YML, table)]


def conform(scores: pd.DataFrame, table: str = "clv_scores") -> pd.DataFrame:
    """The rows as the contract declares them: its columns in its order, typed; missing ones NULL."""
    declared = dict(score_columns(SCORES_YML, table))
    undeclared = [c for c in scores.columns if c not in declared]
    if undeclared:
        raise ScoreContractError(f"{table}: column(s) {', '.join(undeclared)} are not in the score tables' "
                                 f"contract ({SCORES_YML.relative_to(SCORES_YML.parents[3])}): declare them there "
                                 "with a data_type")
    out = {}
    for name, kind in declared.items():
        values = scores[name] if name in scores else pd.Series([None] * len(scores), index=scores.index, dtype=object)
        out[name] = _typed(f"{table} column {name}", kind, values)
    return pd.DataFrame(out, index=scores.index)


def _typed(name: str, kind: str, values: pd.Series) -> pd.Series:
    with warnings.catch_warnings():  # text that is no date: the error below names it, pandas' warning adds nothing
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        return _conformed(name, kind, values)


def _conformed(name: str, kind: str, values: pd.Series) -> pd.Series:
    try:
        if kind == "float8":
            return pd.to_numeric(values, errors="raise").astype("float64")
        if kind == "bigint":
            return pd.to_numeric(values, errors="raise").astype("Int64")
        if kind == "timestamp":
            return pd.to_datetime(values, errors="raise")
        if kind == "date":
            return pd.to_datetime(values, errors="raise").dt.date.astype(object).where(values.notna(), None)
    except (TypeError, ValueError) as exc:
        bad = values[pd.to_datetime(values, errors="coerce").isna() & values.notna()] if kind not in ("float8", "bigint") else \
            values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        raise ScoreContractError(f"{name}: {len(bad)} row(s) are not {kind} values, e.g. "
                                 f"{bad.iloc[0]!r} (the contract in marts/_scores.yml)") from exc
    text = values.astype(object).where(values.notna(), None)
    if pd.api.types.infer_dtype(text, skipna=True) in ("string", "empty"):
        return text  # text already (reasons, ids): no conversion value by value
    return text.map(lambda v: v if v is None else str(v))
