"""Paths and defaults shared by the CLI, the flows and the tests.

Everything a run writes lives under the project data directory (``CLV_HOME``, default ``./data``):
the DuckDB warehouse, the MLflow store and per-run reports. Bundled inputs ship with the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DBT_PROFILES_DIR = REPO_ROOT
BUNDLED_DATA_DIR = REPO_ROOT / "data" / "bundled"
BUNDLED_ORDERS = BUNDLED_DATA_DIR / "online_retail_ii.parquet"

MODEL_NAME = "clv_xgboost"
CHAMPION_ALIAS = "champion"


def project_home() -> Path:
    """Directory where runs keep their state (warehouse, MLflow store)."""
    return Path(os.environ.get("CLV_HOME", Path.cwd() / "data")).resolve()


def default_warehouse() -> Path:
    return project_home() / "warehouse" / "clv.duckdb"


def default_tracking_uri() -> str:
    """MLflow tracking URI: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store in the project."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    store = project_home() / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def default_artifact_location() -> str:
    """Where MLflow puts model artifacts: under the storage root when it is S3 (CLV_STORAGE_URL),
    else in the project's MLflow directory."""
    storage_url = os.environ.get("CLV_STORAGE_URL", "")
    if storage_url.startswith("s3://"):
        return f"{storage_url.rstrip('/')}/mlflow-artifacts"
    return (project_home() / "mlflow" / "artifacts").as_uri()


def use_project_tracking_store() -> str:
    """Point MLflow (tracking and registry) at the project's store; returns its URI."""
    from models_ml import registry

    uri = default_tracking_uri()
    registry.use_tracking_store(uri, default_artifact_location())
    return uri
