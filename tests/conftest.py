"""Shared fixtures: an isolated project home per test, small real datasets, a Prefect test server."""

from __future__ import annotations

import os

# Offline, quiet defaults before Prefect, dbt or MLflow are imported.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import pytest  # noqa: E402

from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: E402, F401 - fixture

from clv.config import BUNDLED_ORDERS  # noqa: E402

@pytest.fixture
def clv_home(tmp_path, monkeypatch):
    """A fresh project home (warehouse, MLflow store, dbt state) for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CLV_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CLV_PII_HASH_KEY", raising=False)
    return home


@pytest.fixture(scope="session")
def retail_sample(tmp_path_factory) -> Path:
    """Bundled Online Retail II, cut to 1 in 12 customers (plus rows without a customer id) to keep
    dbt and training quick. Columns as published."""
    path = tmp_path_factory.mktemp("retail") / "online_retail_ii_sample.parquet"
    duckdb.sql(
        f"""copy (select * from read_parquet('{BUNDLED_ORDERS}')
                  where "Customer ID" is null and hash("Invoice") % 50 = 0
                     or cast("Customer ID" as bigint) % 12 = 0)
            to '{path}' (format parquet)"""
    )
    return path


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server (and database) for tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
