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
import numpy as np
import pandas as pd

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


ACCURACY_DATASETS = {
    # Two years of data: a strict backtest needs horizon + history + horizon, so 180 days here.
    "online-retail": {"horizon_days": 180, "training_snapshots": 18, "snapshot_spacing_days": 30,
                      "note": "Online Retail II spans two years: evaluated at a 180-day horizon, not 365, "
                              "so that training labels end before the test cutoff"},
    "synthetic": {"horizon_days": 365, "training_snapshots": 24, "snapshot_spacing_days": 30,
                  "note": "synthetic shop over three years (clv synth, seed 7)"},
    "cdnow": {"horizon_days": 273, "training_snapshots": 1, "snapshot_spacing_days": 91, "cutoff": "1998-06-30",
              "note": "CDNOW 1/10 sample, 39-week calibration and holdout; no earlier labelled period exists, "
                      "so only unsupervised models (last period, BG/NBD + Gamma-Gamma) are evaluated"},
}


def _cdnow_orders(out: Path) -> Path:
    from clv.config import BUNDLED_DATA_DIR

    raw = duckdb.sql(f"select * from read_parquet('{BUNDLED_DATA_DIR / 'cdnow' / 'cdnow_sample.parquet'}')").df()
    orders = raw.assign(customer_id=raw["sample_id"], order_id=[f"t{i}" for i in range(len(raw))],
                        order_ts=pd.to_datetime(raw["date"], format="%Y%m%d"), quantity=1,
                        unit_price=raw["dollar_value"])[["customer_id", "order_id", "order_ts", "quantity", "unit_price"]]
    path = out / "cdnow_orders.parquet"
    orders.to_parquet(path, index=False)
    return path


def accuracy_training_set(dataset: str, workdir: Path, customers: int = 20000) -> tuple[pd.DataFrame, dict]:
    """Land the dataset, dbt build the labelled snapshots, and return them with the dataset settings."""
    from clv.config import BUNDLED_ORDERS

    settings = ACCURACY_DATASETS[dataset]
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = {}
    if dataset == "online-retail":
        inputs = {"orders": BUNDLED_ORDERS}
    elif dataset == "cdnow":
        inputs = {"orders": _cdnow_orders(workdir)}
    else:
        paths = write_synthetic(SynthConfig(customers, seed=7, days=1095), workdir / f"synth-{customers}")
        inputs = {name: paths[name] for name in ("customers", "orders", "events")}
    warehouse = workdir / f"accuracy-{dataset}.duckdb"
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        for entity, path in inputs.items():
            land_file(con, entity, path)
    variables = dbt_vars(settings.get("cutoff"), settings["horizon_days"], settings["training_snapshots"],
                         settings["snapshot_spacing_days"])
    run_dbt(["build"], warehouse=warehouse, variables=variables)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute("select * from customer_training_set order by cutoff_date, customer_id").df()
    return frame, settings


def bench_accuracy(dataset: str, json_path: Path, workdir: Path, customers: int = 20000,
                   report_path: Path | None = None, tune_trials: int = 0) -> dict:
    """Every model on the same strict temporal holdout; JSON of the metrics plus an HTML report."""
    from models_ml.baselines import LastPeriodSpend, SpendRateTimesLifespan
    from models_ml.btyd import BgNbdGammaGamma
    from models_ml.evaluation import evaluate_models, strict_temporal_split
    from models_ml.gradient_boosting import OFFSET_MODEL_PARAMS, XGBoostCLV
    from models_ml.linear import LinearRFM
    from models_ml.report import write_report

    frame, settings = accuracy_training_set(dataset, workdir, customers)
    horizon = settings["horizon_days"]
    train, test = strict_temporal_split(frame, horizon)
    models = [SpendRateTimesLifespan(horizon), LastPeriodSpend(horizon), LinearRFM(), BgNbdGammaGamma(horizon),
              XGBoostCLV(horizon_days=horizon), XGBoostCLV(with_btyd=True, horizon_days=horizon),
              XGBoostCLV(OFFSET_MODEL_PARAMS, horizon_days=horizon, offset="last_period")]
    if tune_trials and not train.empty:
        import mlflow

        from clv.config import default_artifact_location, default_tracking_uri
        from models_ml.tuning import tune_xgboost

        mlflow.set_tracking_uri(default_tracking_uri())
        if mlflow.get_experiment_by_name("clv-tuning") is None:
            mlflow.create_experiment("clv-tuning", artifact_location=default_artifact_location())
        mlflow.set_experiment("clv-tuning")
        best = tune_xgboost(train, horizon, tune_trials)
        tuned = XGBoostCLV(best, horizon_days=horizon)
        tuned.name = "xgboost_tuned"
        models.append(tuned)
    results = evaluate_models(models, train, test)
    test_cutoff = str(pd.Timestamp(test["cutoff_date"].iloc[0]).date())
    train_cutoffs = sorted({str(pd.Timestamp(c).date()) for c in train["cutoff_date"]})
    summary = {
        "dataset": dataset,
        "train_cutoff": train_cutoffs[-1] if train_cutoffs else None,
        "train_cutoffs": train_cutoffs,
        "test_cutoff": test_cutoff,
        "horizon_days": horizon,
        "note": settings["note"],
        "customers_test": len(test),
        "customers_train_rows": len(train),
        "models": {name: {k: _round(v) for k, v in r.metrics.items()} for name, r in results.items()},
        "disparate_impact": {name: {k: _round(v) for k, v in r.disparate_impact.items()} for name, r in results.items()},
        "slices": {name: r.slices for name, r in results.items()},
        # calibration per decile of predicted value: mean predicted vs mean actual
        "deciles": {name: r.deciles.round(4).to_dict(orient="list") for name, r in results.items()},
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2, default=_round) + "\n")
    report_path = report_path or json_path.with_suffix(".html")
    write_report(report_path, summary, results, test)
    summary["report"] = str(report_path)
    return summary


def _round(value):
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else round(float(value), 6)
