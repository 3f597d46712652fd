"""Run the dbt project in-process (dbt-core's programmatic runner)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from clv.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR, project_home

log = logging.getLogger(__name__)


class DbtBuildError(RuntimeError):
    """dbt reported failing models or tests; the message lists them."""


def dbt_vars(cutoff=None, horizon_days: int = 365, training_cutoffs=(), label_horizons=None,
             order_value_cap_percentile: float | None = 0.999) -> dict:
    """The dbt project's vars (see dbt_project.yml); a None cutoff means the last order date.
    `training_cutoffs` come from the snapshot calendar (clv/snapshots.py)."""
    return {
        "cutoff_date": str(cutoff) if cutoff else None,
        "horizon_days": int(horizon_days),
        "training_cutoffs": [str(c) for c in training_cutoffs],
        "label_horizons": [int(h) for h in label_horizons] if label_horizons else None,
        "order_value_cap_percentile": order_value_cap_percentile,
    }


def run_dbt(command: list[str], warehouse: Path | str | None = None, variables: dict | None = None,
            target: str = "duckdb"):
    """Invoke `dbt <command>` on the project against a target; raise DbtBuildError naming what failed."""
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if warehouse is not None:
        os.environ["CLV_WAREHOUSE"] = str(Path(warehouse).resolve())
    state_dir = project_home() / "dbt"
    args = [
        *command,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROFILES_DIR),
        "--target", target,
        "--target-path", str(state_dir / "target"),
        "--log-path", str(state_dir / "logs"),
    ]
    if variables:
        args += ["--vars", json.dumps(variables)]
    log.info("dbt %s", " ".join(command))
    try:
        result = dbtRunner().invoke(args)
    finally:
        _release_duckdb_file()
    if result.success:
        return result
    if result.exception is not None:
        raise DbtBuildError(f"dbt {' '.join(command)} could not run: {result.exception}")
    failures = [
        f"{r.node.resource_type} {r.node.name}: {r.status} ({(r.message or '').strip()[:300]})"
        for r in (result.result.results if result.result else [])
        if str(r.status) in {"error", "fail"}
    ]
    raise DbtBuildError(f"dbt {' '.join(command)} failed:\n  " + "\n  ".join(failures or ["unknown failure"]))


def _release_duckdb_file() -> None:
    """Close dbt-duckdb's process-wide DuckDB instance so the warehouse file is free again: DuckDB
    allows one writer per file, and a later read-only connection in this process would conflict."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        from dbt.adapters.factory import reset_adapters
    except ImportError:  # another adapter
        return
    reset_adapters()
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            try:
                DuckDBConnectionManager._ENV.close()
            finally:
                DuckDBConnectionManager._ENV = None
