"""What the dbt build compiled about the feature tables: each column's `meta`, read from dbt's manifest.

The manifest (`$CLV_HOME/dbt/target/manifest.json`) is written by every dbt invocation, so after a run's
build it describes exactly the tables that build produced, from whichever properties file declared the
columns. The models take what they need from it as parameters (`models_ml` never reads dbt's files; a
SageMaker training job gets the list as a hyperparameter).
"""

from __future__ import annotations

import json
from pathlib import Path

from clv.config import project_home

PROJECT_NAME = "clv"


def manifest_path() -> Path:
    return project_home() / "dbt" / "target" / "manifest.json"


def column_meta(model: str = "customer_features", manifest: Path | None = None) -> dict[str, dict]:
    """Each documented column of a dbt model with its `meta` (empty when it has none). Parses the project
    first when no dbt command has written a manifest yet."""
    path = manifest or manifest_path()
    if not path.exists():
        from clv.transform import run_dbt

        run_dbt(["parse"])
    nodes = json.loads(path.read_text())["nodes"]
    node = nodes.get(f"model.{PROJECT_NAME}.{model}")
    if node is None:
        raise KeyError(f"{path} has no dbt model {model!r}")
    return {name: {**(column.get("config") or {}).get("meta", {}), **(column.get("meta") or {})}
            for name, column in node["columns"].items()}


def history_length_dependent_columns(manifest: Path | None = None) -> list[str]:
    """Feature columns marked `history_length_dependent`: totals that grow with the history before the
    cutoff, which early training cutoffs see less of than the scoring cutoff (the offset model leaves
    them out)."""
    return [name for name, meta in column_meta("customer_features", manifest).items()
            if meta.get("history_length_dependent")]
