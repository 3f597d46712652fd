"""Benchmarks that write JSON: `clv bench features` times the dbt feature build against a bare scan of
the same raw tables on the same engine (DuckDB), on synthetic data of a chosen size."""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from clv.landing import land_file
from clv.synth import SynthConfig, write_synthetic
from clv.transform import dbt_vars, run_dbt

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: str, fn):
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    log.info("%s: %.1f s", label, seconds)
    return value, seconds


def bench_features(customers: int, json_path: Path, workdir: Path, data_dir: Path | None = None,
                   training_snapshots: int = 3, seed: int = 7) -> dict:
    """Generate (or reuse) synthetic data, land it, then time `dbt run` of customer_features and its
    parents against `group by customer_id` scans of raw.orders and raw.events into tables."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or workdir / f"synth-{customers}"
    generate_seconds = None
    if not (data_dir / "orders.parquet").exists():
        _, generate_seconds = _timed("generate", lambda: write_synthetic(SynthConfig(customers, seed=seed), data_dir))
    warehouse = workdir / f"bench-{customers}.duckdb"
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        def land_all():
            for entity in ("customers", "orders", "events"):
                land_file(con, entity, data_dir / f"{entity}.parquet")
        _, land_seconds = _timed("land", land_all)
        counts = {t: con.execute(f"select count(*) from raw.{t}").fetchall()[0][0] for t in ("orders", "events")}
        scans = {}
        for table, value in (("orders", "quantity * unit_price"), ("events", "session_duration_s")):
            _, scans[table] = _timed(f"scan {table}", lambda: con.execute(
                f"create or replace table scan_{table} as select customer_id, count(*) as n, sum({value}) as total "
                f"from raw.{table} group by customer_id"))
            con.execute(f"drop table scan_{table}")
    variables = dbt_vars(training_snapshots=training_snapshots)
    _, build_seconds = _timed("dbt run +customer_features", lambda: run_dbt(
        ["run", "--select", "+customer_features"], warehouse=warehouse, variables=variables))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cutoffs = con.execute("select count(distinct cutoff_date) from customer_features").fetchall()[0][0]
        feature_rows = con.execute("select count(*) from customer_features").fetchall()[0][0]
    scan_total = scans["orders"] + scans["events"]
    result = {
        "benchmark": "features",
        "engine": f"duckdb {duckdb.__version__}",
        "customers": customers,
        "order_lines": counts["orders"],
        "events": counts["events"],
        "cutoffs_built": cutoffs,
        "feature_rows": feature_rows,
        "generate_seconds": generate_seconds,
        "land_seconds": round(land_seconds, 2),
        "feature_build_seconds": round(build_seconds, 2),
        "feature_build_seconds_per_cutoff": round(build_seconds / max(cutoffs, 1), 2),
        "raw_scan_seconds": {"orders": round(scans["orders"], 2), "events": round(scans["events"], 2),
                             "total": round(scan_total, 2)},
        "per_cutoff_build_to_scan_ratio": round(build_seconds / max(cutoffs, 1) / scan_total, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result
