"""Shared fixtures: an isolated project home per test, small real datasets, a Prefect test server."""

from __future__ import annotations

import os

# Offline, quiet defaults before Prefect, dbt or MLflow are imported.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
# A test that does not set its own project home writes into one of this process's, never into the
# checkout's data/ (`make test` runs two pytest workers at once).
if "CLV_HOME" not in os.environ:
    import tempfile

    os.environ["CLV_HOME"] = tempfile.mkdtemp(prefix="clv-tests-home-")

import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402
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
def synthetic_shop(tmp_path_factory) -> dict:
    """A small synthetic shop (3,000 customers, four years from 2022 and three weeks, clv synth) whose
    behaviour a model can learn. (A shop observed from its launch for only two years is harder: `clv synth --shop
    seasonal-growing`, tests/cli/test_synth_seasonal.py and docs/models-and-evaluation.md.)"""
    from datetime import date

    from clv.synth import SynthConfig, write_synthetic

    return write_synthetic(SynthConfig(customers=3000, seed=11, start=date(2022, 1, 1), days=1460 + 21),
                           tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server (and database) for tests that run flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@contextmanager
def moto_s3(monkeypatch, bucket: str):
    """S3 through moto (in-process: the offline stand-in for AWS) holding one empty bucket in eu-west-1;
    yields the client. Other AWS clients made inside the block (SageMaker) are moto's too."""
    from moto import mock_aws

    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


@contextmanager
def scratch_postgres_database():
    """(admin connection, name) of a new database on the test PostgreSQL server, dropped afterwards."""
    from clv.warehouse.postgres import PostgresSettings

    settings = PostgresSettings.from_env()
    try:
        admin = settings.connect("postgres")
    except Exception as exc:  # noqa: BLE001 - any connection failure means: no server here
        pytest.skip(f"no PostgreSQL server at {settings.host}:{settings.port} ({exc}); .ci/run starts one")
    admin.autocommit = True
    name = f"clv_test_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    try:
        yield admin, name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")
        admin.close()


@pytest.fixture(scope="module")
def postgres_database():
    """A fresh database on the PostgreSQL server named by CLV_PG_* (default 127.0.0.1:5432, user
    postgres), set as the warehouse database; skipped with the reason when no server answers
    (.ci/run starts one)."""
    with scratch_postgres_database() as (admin, name):
        yield from _as_warehouse(name)


def _as_warehouse(name):
    from clv.warehouse.postgres import PostgresSettings

    previous = os.environ.get("CLV_PG_DATABASE")
    os.environ["CLV_PG_DATABASE"] = name
    yield PostgresSettings.from_env()
    if previous is None:
        os.environ.pop("CLV_PG_DATABASE")
    else:
        os.environ["CLV_PG_DATABASE"] = previous


def assert_no_clear_text(con, values) -> None:
    """Search every text column of every table and view of a DuckDB warehouse for each value."""
    relations = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    assert relations
    for schema, table in relations:
        columns = [r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "and data_type = 'VARCHAR'", [schema, table]).fetchall()]
        for column in columns:
            hits = con.execute(
                f'select count(*) from "{schema}"."{table}" where ' + " or ".join(
                    f'contains(lower("{column}"), lower(?))' for _ in values), list(values)).fetchall()[0][0]
            assert hits == 0, f"clear-text personal data in {schema}.{table}.{column}"


@pytest.fixture(autouse=True)
def prefect_console_follows_the_real_stderr():
    """Prefect's console log handler keeps the stream it was created with; when that was a test's
    captured stream (capsys), later flow logs would write to a closed file. Point it back after each test."""
    import logging
    import sys

    yield
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.getLogger(), *[logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # (setStream would flush the closed one)
                handler.console.file = sys.stderr
