"""Redshift SQL checked beyond text: the dbt models compiled for the redshift target and the statements
the Redshift run lock issues pass the Redshift dialect check (`tests/warehouse/redshift_dialect.py`); the sink's and
the publisher's statements are checked in test_redshift_sink.py. Compiling needs no server
(`--no-introspect`); nothing here reaches AWS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clv.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR
from clv.warehouse import run_lock
from tests.warehouse.redshift_dialect import redshift_problems

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_the_check_refuses_duckdb_only_sql():
    assert redshift_problems("select customer_id, sum(quantity * unit_price) from raw.orders group by 1") == []
    assert redshift_problems("select try_cast(quantity as double) from raw.orders")
    assert redshift_problems("select * exclude (row_key) from raw.orders")
    assert redshift_problems("select * from raw.orders using sample 10%")
    assert redshift_problems("select from where")


@pytest.fixture(scope="module")
def compiled_for_redshift(tmp_path_factory) -> Path:
    target_path = tmp_path_factory.mktemp("redshift-target")
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "CLV_DBT_TARGET": "redshift"}
    dbt = Path(sys.executable).with_name("dbt")
    done = subprocess.run([str(dbt), "compile", "--target", "redshift", "--no-introspect", "--no-populate-cache",
                           "--profiles-dir", str(DBT_PROFILES_DIR), "--project-dir", str(DBT_PROJECT_DIR),
                           "--target-path", str(target_path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return target_path / "compiled"


def test_every_dbt_model_and_test_compiles_to_redshift_sql(compiled_for_redshift):
    files = sorted(compiled_for_redshift.rglob("*.sql"))
    models = [f for f in files if "/models/" in str(f) and "/tests/" not in str(f)]
    assert len(models) >= 12, [f.name for f in files]
    problems = {f.name: redshift_problems(f.read_text()) for f in files}
    assert {name: p for name, p in problems.items() if p} == {}


def test_the_redshift_run_lock_statements_are_redshift_sql():
    statements = [run_lock.LEASE_TABLE_SQL, run_lock.TAKE_LEASE_SQL,
                  "delete from raw.run_lock where expires_at <= getdate()",
                  "select holder from raw.run_lock order by taken_at desc limit 1",
                  "delete from raw.run_lock where holder = %s"]
    assert {s: redshift_problems(s) for s in statements if redshift_problems(s)} == {}
