"""Benchmarks that write JSON: `clv bench scale` runs the weekly cycle stage by stage on a synthetic shop of
a chosen size; `clv bench features` times the dbt feature build alone; both against a bare scan of the
same raw tables on the same engine (DuckDB). `clv bench accuracy` compares the models."""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from clv.ingest.landing import land_file
from clv.settings import DEFAULTS
from clv.snapshots import plan_for_warehouse
from clv.synth import SynthConfig, write_synthetic
from clv.transform import dbt_vars, run_dbt
from clv.warehouse.embedded import WarehouseReader, connect, memory_limit

log = logging.getLogger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last `reset_peak_rss` (Linux VmHWM), else so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Start a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM); no-op elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


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
    with connect(warehouse) as con:  # with the configured DuckDB memory limit
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
    plan = plan_for_warehouse(WarehouseReader("duckdb", warehouse), None, 365, max_training_cutoffs=training_snapshots)
    variables = dbt_vars(None, 365, plan.training_cutoffs, plan.label_horizons)
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
    # Every dataset is evaluated for the product's 365-day prediction; the snapshot plan shortens the
    # backtest horizon, and says so, when the data are too short for a strict backtest at 365 days.
    "online-retail": {"horizon_days": 365, "note": "UCI Online Retail II, two years (2009-12 to 2011-12)"},
    "synthetic": {"horizon_days": 365, "days": 1460, "start": date(2022, 1, 1),
                  "note": "synthetic shop over four years (clv synth, seed 7); the oracle knows each customer's "
                          "latent rate, dropout probability, mean order value and whether they are still alive; the "
                          "bayes_ceiling knows only the data and the generator's population distributions"},
    "synthetic-seasonal": {"horizon_days": 365, "days": 730, "start": date(2024, 4, 1), "profile": "seasonal-growing",
                           "note": "synthetic shop two years old (clv synth --shop seasonal-growing, seed 7): a "
                                   "November-December peak, 40% of customers acquired in the last six months, browsing "
                                   "tracked for three quarters of them; oracle and bayes_ceiling know the seasonal clock"},
    "cdnow": {"horizon_days": 365, "note": "CDNOW 1/10 sample, 78 weeks of 1997-1998"},
}
CHAMPION_TYPE = "xgboost_offset"
BENCH_MODELS = ("heuristic", "last_period", "last_period_scaled", "linear", "bgnbd_gg", "paretonbd_gg", "xgboost",
                "hybrid", CHAMPION_TYPE)


def _cdnow_orders(out: Path) -> Path:
    from clv.config import BUNDLED_DATA_DIR

    raw = duckdb.sql(f"select * from read_parquet('{BUNDLED_DATA_DIR / 'cdnow' / 'cdnow_sample.parquet'}')").df()
    orders = raw.assign(customer_id=raw["sample_id"], order_id=[f"t{i}" for i in range(len(raw))],
                        order_ts=pd.to_datetime(raw["date"], format="%Y%m%d"), quantity=1,
                        unit_price=raw["dollar_value"])[["customer_id", "order_id", "order_ts", "quantity", "unit_price"]]
    path = out / "cdnow_orders.parquet"
    orders.to_parquet(path, index=False)
    return path


def accuracy_training_set(dataset: str, workdir: Path, customers: int = 20000):
    """Land the dataset, plan its snapshots, dbt build them; returns (training set, plan, settings, inputs)."""
    from clv.config import BUNDLED_ORDERS

    settings = ACCURACY_DATASETS[dataset]
    workdir.mkdir(parents=True, exist_ok=True)
    if dataset == "online-retail":
        inputs = {"orders": BUNDLED_ORDERS}
    elif dataset == "cdnow":
        inputs = {"orders": _cdnow_orders(workdir)}
    else:
        from clv.synth import SHOP_PROFILES

        profile = SHOP_PROFILES[settings.get("profile", "stationary")]
        shop = SynthConfig(customers, seed=7, start=settings["start"], **{**profile, "days": settings["days"]})
        paths = write_synthetic(shop, workdir / f"synth-{customers}-{settings['days']}-{settings.get('profile', 'stationary')}",
                                latent=True)
        inputs = {**paths, "season_amplitude": shop.season_amplitude, "start": shop.start}
    warehouse = workdir / f"accuracy-{dataset}.duckdb"
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        for entity in ("customers", "orders", "events"):
            if entity in inputs:
                land_file(con, entity, inputs[entity])
    plan = plan_for_warehouse(WarehouseReader("duckdb", warehouse), None, settings["horizon_days"])
    run_dbt(["build"], warehouse=warehouse,
            variables=dbt_vars(None, settings["horizon_days"], plan.training_cutoffs, plan.label_horizons))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute("select * from customer_training_set order by cutoff_date, customer_id, horizon_days").df()
    return frame, plan, settings, inputs


CEILINGS = ("oracle", "bayes_ceiling")


def _ceilings(inputs: dict, rows: pd.DataFrame, horizon_days: int) -> dict[str, np.ndarray]:
    """The synthetic shop's two ceilings per backtest row: `oracle` (knows each customer's latent state,
    alive or not) and `bayes_ceiling` (the Bayes-optimal prediction from the observable data alone)."""
    from clv.synth import bayes_ceiling_expected_revenue, oracle_expected_revenue

    latent = pd.read_parquet(inputs["latent"])
    orders = pd.read_parquet(inputs["orders"], columns=["customer_id", "order_id", "order_ts", "quantity", "unit_price"])
    events = pd.read_parquet(inputs["events"], columns=["customer_id", "session_id", "event_ts", "event_type"])
    customers = pd.read_parquet(inputs["customers"], columns=["customer_id", "acquisition_channel"])
    predictions = {"oracle": np.zeros(len(rows)), "bayes_ceiling": np.zeros(len(rows))}
    for origin in rows["origin"].unique():
        mask = (rows["origin"] == origin).to_numpy()
        ids = rows.loc[mask, "customer_id"]
        clock = {"start": inputs["start"], "season_amplitude": inputs["season_amplitude"]}
        predictions["oracle"][mask] = oracle_expected_revenue(latent, orders, ids, origin, horizon_days, **clock)
        predictions["bayes_ceiling"][mask] = bayes_ceiling_expected_revenue(orders, events, customers, ids, origin,
                                                                            horizon_days, **clock)
    return predictions


def bench_accuracy(dataset: str, json_path: Path, workdir: Path, customers: int = 20000,
                   report_path: Path | None = None, tune_trials: int = 0, resamples: int = 500) -> dict:
    """Every model on the one evaluation protocol (strict rolling-origin backtest, paired bootstrap 95%
    intervals against last year's spend); JSON plus an HTML report."""
    from clv.dbt_manifest import history_length_dependent_columns
    from clv.snapshots import validation_backtest
    from models_ml import zoo
    from models_ml.protocol import SLICE_COLUMNS, backtest_rows, evaluate, run_backtest, slice_table
    from models_ml.report import write_report

    frame, plan, settings, inputs = accuracy_training_set(dataset, workdir, customers)
    if not plan.backtest.feasible:
        raise ValueError(f"{dataset}: {plan.backtest.note}")
    specs = {name: zoo.default_spec(name) for name in BENCH_MODELS}
    dependent = history_length_dependent_columns()  # from the manifest of the build above
    tuning = None
    if tune_trials:
        import mlflow

        from clv.config import default_artifact_location, default_tracking_uri
        from models_ml.tuning import tune

        validation = validation_backtest(plan)
        if validation.feasible:
            mlflow.set_tracking_uri(default_tracking_uri())
            if mlflow.get_experiment_by_name("clv-tuning") is None:
                mlflow.create_experiment("clv-tuning", artifact_location=default_artifact_location())
            mlflow.set_experiment("clv-tuning")
            tuning = tune(frame, validation, tune_trials, specs[CHAMPION_TYPE],
                          history_length_dependent=dependent)
            specs["xgboost_offset_tuned"] = tuning["spec"]
            tuning["validation_origins"] = validation.origins
        else:
            tuning = {"skipped": validation.note}
    result = run_backtest(frame, plan.backtest,
                          {name: zoo.factory(spec, dependent) for name, spec in specs.items()}, resamples=0)
    if "latent" in inputs:
        result.predictions.update(_ceilings(inputs, result.rows, plan.backtest.horizon_days))
    # differences to every model (the type and fallback choices compare them) and the two ceilings
    evaluate(result, resamples=resamples, seed=0, reference=tuple(result.predictions))
    choice = _choose_like_the_weekly_run(result, specs)
    from models_ml.metrics import decile_table, full_report

    pooled = {name: full_report(result.rows["actual"], p) for name, p in result.predictions.items()}
    summary = {
        "dataset": dataset,
        "note": settings["note"],
        "horizon_days": settings["horizon_days"],
        "backtest_horizon_days": plan.backtest.horizon_days,
        "protocol_note": plan.backtest.note,
        "origins": plan.backtest.origins,
        "training_cutoffs": plan.backtest.training_cutoffs,
        "rows": len(result.rows),
        "customers": int(result.rows["customer_id"].nunique()),
        "bootstrap_resamples": resamples,
        "champion": choice["type_choice"]["chosen"],
        "type_choice": choice["type_choice"],
        "fallback": choice["fallback"],
        "gates": choice["gates"],
        "models": {name: {**{k: _round(v) for k, v in result.metrics[name].items()},
                          **{f"pooled_{k}": _round(v) for k, v in pooled[name].items()}}
                   for name in result.predictions},
        "ci": {name: {k: [_round(v[0]), _round(v[1])] for k, v in ci.items()} for name, ci in result.ci.items()},
        "per_origin": {name: {o: {k: _round(v) for k, v in m.items()} for o, m in per.items()}
                       for name, per in result.per_origin.items()},
        "slices": {name: {column: slice_table(result, name, column, 100) for column in SLICE_COLUMNS
                          if column in result.rows and result.rows[column].nunique() > 1}
                   for name in result.predictions},
        "deciles": {name: decile_table(result.rows["actual"], p).round(4).to_dict(orient="list")
                    for name, p in result.predictions.items()},
        "distribution": {name: _json_safe(d) for name, d in result.distribution.items()},
        "base_forecast": {name: _base_forecast_check(result, name) for name in result.predictions},
        "tuning": tuning,
        "specs": specs,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    report_path = report_path or json_path.with_suffix(".html")
    last_origin = plan.backtest.origins[-1]  # the champion's own SHAP summary, on the latest origin
    rows = backtest_rows(frame, plan.backtest.horizon_days)
    from models_ml.base import features_and_target

    champion = zoo.build_model(specs[summary["champion"]], plan.backtest.horizon_days, dependent).fit(
        *features_and_target(rows[rows["cutoff_date"].isin(plan.backtest.training_cutoffs[last_origin])]))
    write_report(report_path, summary, result, champion, rows[rows["cutoff_date"] == last_origin])
    summary["report"] = str(report_path)
    return summary


def _base_forecast_check(result, name: str) -> dict:
    """The whole base's 80% interval at each origin, built from the other origins (models_ml/base_forecast.py)."""
    from models_ml import base_forecast
    from models_ml.spread import fit_on_backtest

    predicted = result.predictions[name]
    totals = base_forecast.origin_totals(result.rows, predicted, fit_on_backtest(result.rows, predicted, result.horizon_days))
    check = base_forecast.backtest_forecast(totals)
    return _json_safe({k: check[k] for k in ("all", "held_share_all", "median_width_share_all", "held_share_scopes", "note")})


def _choose_like_the_weekly_run(result, specs: dict) -> dict:
    """The fallback, the model type and the gates as a first weekly run would decide them on this backtest
    (`models_ml.training.choose_type`, `models_ml.gates.choose_fallback`)."""
    from models_ml import zoo
    from models_ml.gates import choose_fallback, evaluate_gates
    from models_ml.training import as_candidate, choose_type

    fallbacks = [name for name in zoo.FALLBACK_TYPES if name in result.predictions]
    fallback, why = choose_fallback(result, fallbacks)
    types = [t for t in zoo.CANDIDATE_TYPES if t in specs]
    gates = {t: evaluate_gates(as_candidate(result, t), False, fallback=fallback) for t in types}
    type_choice = choose_type(result, types, types[0], {t: [r.gate for r in g if not r.passed] for t, g in gates.items()})
    return {"fallback": {"type": fallback, "why": why}, "type_choice": type_choice,
            "gates": {t: [{"gate": r.gate, "passed": r.passed, "detail": r.detail} for r in g] for t, g in gates.items()}}


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _round(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _round(value):
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else round(float(value), 6)


class _StageClock:
    """Wall seconds, rows per second and the process's peak memory after each stage."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    def run(self, stage: str, rows: int | None, fn, *, rows_after=None):
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
        self.record(stage, seconds, rows_after(value) if rows_after else rows)
        return value

    def record(self, stage: str, seconds: float, rows: int | None) -> None:
        self.stages[stage] = {"seconds": round(seconds, 2),
                              "rows": rows,
                              "rows_per_s": round(rows / seconds) if rows and seconds > 0 else None,
                              "peak_rss_mb_after": round(peak_rss_mb(), 1)}
        log.info("%s: %.1f s (%s rows), peak RSS so far %.0f MB", stage, seconds, rows, peak_rss_mb())


@contextmanager
def _project_home(home: Path):
    """CLV_HOME set to `home` (and no MLFLOW_TRACKING_URI) inside the block; the caller's restored after."""
    saved = {name: os.environ.get(name) for name in ("CLV_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["CLV_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


WEEK1_DAYS = 730  # the first week's run sees two years of the shop's history


def bench_scale(customers: int, json_path: Path, workdir: Path, data_dir: Path | None = None,
                seed: int = 7, weeks: int = 1, training_snapshots: int = 3,
                horizon_days: int = DEFAULTS.horizon_days) -> dict:
    """The weekly cycle on a synthetic shop of `customers` customers, stage by stage, in this process (the
    weekly flow's own steps, `clv.pipeline`), plus the raw-scan floor on the same engine. Week 1 lands two
    years of history, builds the snapshots, trains and registers the champion and scores; each further week
    lands the next seven days of customers, orders and events and runs the cycle again (no training: the
    champion serves), on the snapshots kept in the warehouse."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / f"scale-{customers}-home"
    shutil.rmtree(home, ignore_errors=True)
    config_days = WEEK1_DAYS + 7 * (weeks - 1)
    generate = _StageClock()
    if data_dir is None:  # generate afresh (timed apart); --data reuses a `clv synth` directory instead
        data_dir = workdir / f"synth-{customers}-{config_days}"
        generate.run("generate", None, lambda: write_synthetic(SynthConfig(customers, seed=seed, days=config_days),
                                                               data_dir),
                     rows_after=lambda _: _parquet_rows(data_dir))
    slices = generate.run("slice", None, lambda: _weekly_slices(data_dir, workdir / f"weeks-{customers}", weeks))
    warehouse = home / "warehouse" / "clv.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    week_results = []
    with _project_home(home):  # its own warehouse, MLflow store and reports, whatever the caller's are
        for week, files in enumerate(slices, start=1):
            log.info("week %d of %d", week, weeks)
            week_results.append(_scale_week(warehouse, home, files, week == 1, training_snapshots, horizon_days))
    first = week_results[0]
    result_json = {
        "benchmark": "scale",
        "engine": f"duckdb {duckdb.__version__}",
        "customers": customers,
        **{k: v for k, v in first.items() if k != "stages"},
        "stages": {**generate.stages, **first["stages"]},
        "weeks": [{"week": i, **w} for i, w in enumerate(week_results, start=1)],
        "duckdb_memory_limit": memory_limit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if len(week_results) > 1:
        later = week_results[1:]
        result_json["later_weeks"] = {
            "mean_cycle_seconds": round(float(np.mean([w["weekly_cycle_seconds"] for w in later])), 2),
            "mean_cycle_share_of_first": round(float(np.mean([w["weekly_cycle_seconds"] for w in later]))
                                               / first["weekly_cycle_seconds"], 3),
            "max_feature_to_floor_ratio": max(w["feature_build_to_scan_ratio"] for w in later),
        }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result_json, indent=2) + "\n")
    return result_json


def _time_intervals(served, features: pd.DataFrame, predictions, cutoff) -> str:
    """Each customer's distribution columns and the base's forecast by scope, as scoring computes them (with
    the served model's backtested spread; a shop too short for a strict backtest gets a spread fitted on
    simulated outcomes, which costs the same to apply). Returns where the spread came from."""
    from models_ml import base_forecast
    from models_ml.scoring import assign_tiers
    from models_ml.spread import distribution_columns, fit_spread, rank_fraction

    predictions = np.asarray(predictions, float)
    spread, source = served.spread, "the served model's backtest"
    if spread is None:
        rng = np.random.default_rng(0)
        simulated = predictions * rng.gamma(0.5, 2.0, len(predictions)) * (rng.random(len(predictions)) < 0.5)
        spread, source = fit_spread(simulated, predictions, rank_fraction(predictions), 365), "simulated outcomes (timing only)"
    distribution_columns(spread, predictions)
    frame = features[[c for c in ("country", "acquisition_channel") if c in features]].reset_index(drop=True)
    frame["clv_tier"] = assign_tiers(predictions)
    history = (served.predictive or {}).get("origin_totals") or []
    base_forecast.forecast_table(frame, predictions, spread, history, cutoff)
    return source


def _weekly_slices(data_dir: Path, out: Path, weeks: int) -> list[dict[str, Path]]:
    """Week 1: everything dated in the first two years; week k: the seven days after week k-1."""
    start = pd.Timestamp(SynthConfig(1).start)
    columns = {"customers": "signup_ts", "orders": "order_ts", "events": "event_ts"}
    bounds = [pd.Timestamp("1900-01-01")] + [
        start + pd.Timedelta(days=WEEK1_DAYS + 7 * k) for k in range(weeks)]
    last_order = duckdb.sql(f"select max(order_ts) from read_parquet('{data_dir / 'orders'}.parquet')").fetchall()[0][0]
    if last_order is None or pd.Timestamp(last_order) < bounds[-2]:  # the last week would land nothing
        raise ValueError(f"{data_dir}: its orders end on {pd.Timestamp(last_order).date() if last_order else 'no date'}, "
                         f"but {weeks} weeks need data through {(bounds[-1] - pd.Timedelta(days=1)).date()}: "
                         f"generate it with `clv synth --days {WEEK1_DAYS + 7 * (weeks - 1)}` (or leave out --data)")
    slices = []
    out.mkdir(parents=True, exist_ok=True)
    for week in range(weeks):
        files = {}
        for entity, column in columns.items():
            path = out / f"week{week + 1}-{entity}.parquet"
            duckdb.sql(f"copy (select * from read_parquet('{data_dir / entity}.parquet') "
                       f"where {column} >= '{bounds[week]}' and {column} < '{bounds[week + 1]}') "
                       f"to '{path}' (format parquet)")
            files[entity] = path
        slices.append(files)
    return slices


def _scale_week(warehouse: Path, home: Path, files: dict[str, Path], train: bool, training_snapshots: int,
                horizon_days: int) -> dict:
    """One weekly cycle with the weekly flow's own steps (`clv.pipeline`): land the week's files, check
    freshness, build the snapshots (incremental), train, register and gate when `train`, score with reasons,
    publish and export, monitor. Stage timings, rows and the week's peak memory."""
    from clv import config, pipeline
    from clv.monitoring import monitor
    from clv.settings import RunSettings
    from models_ml import registry

    reset_peak_rss()
    clock = _StageClock()
    run = pipeline.Run.of(RunSettings(orders=str(files["orders"]), customers=str(files["customers"]),
                                      events=str(files["events"]), warehouse=str(warehouse), target="duckdb",
                                      horizon_days=horizon_days, bootstrap_resamples=50))
    start = time.perf_counter()
    landed = pipeline.land(run)
    landing_seconds = time.perf_counter() - start
    validate_seconds = sum(load.validate_seconds for load in landed.loads)
    rows_in = sum(load.rows_read for load in landed.loads)
    clock.record("land", landing_seconds - validate_seconds, rows_in)
    clock.record("validate", validate_seconds, rows_in)
    clock.run("freshness", None, lambda: pipeline.check_freshness(run))
    with connect(warehouse) as con:
        counts = {t: con.execute(f"select count(*) from raw.{t}").fetchall()[0][0] for t in ("orders", "events")}
        scans = {}  # the group-by floor of one cutoff: one pass over each raw table, grouped by customer
        for table, value in (("orders", "quantity * unit_price"), ("events", "session_duration_s")):
            _, scans[table] = _timed(f"scan {table}", lambda: con.execute(
                f"create or replace table scan_{table} as select customer_id, count(*) as n, sum({value}) as total "
                f"from raw.{table} group by customer_id"))
            con.execute(f"drop table scan_{table}")

    built = clock.run("features", counts["orders"] + counts["events"],
                      lambda: pipeline.build(run, max_training_cutoffs=training_snapshots))
    feature_build_seconds = _feature_build_seconds(built.dbt_result)
    cutoff = built.cutoff
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cutoffs_kept = con.execute("select count(distinct cutoff_date) from customer_features").fetchall()[0][0]
        cutoffs_built = con.execute("select count(*) from int_cutoffs where to_build").fetchall()[0][0]
    gate_outcome = None
    if train:
        trained = clock.run("train", None, lambda: pipeline.train(run, built.plan),
                            rows_after=lambda t: t.rows_trained)

        def register():  # with the drift baseline and the gates, as the weekly flow registers
            population = pipeline.scoring_population(run, cutoff)
            week = pipeline.recent_orders(run, cutoff).assign(customers_known=len(population))
            decision = pipeline.register_and_gate(run, trained, {"benchmark": "scale"}, population, week)
            if decision["outcome"] != "champion":  # the benchmark times the model, whatever the gates said
                registry.make_champion(run.settings.model_name, decision["version"], "clv bench",
                                       f"benchmark: the model is timed although the gates said {decision['outcome']}",
                                       force=True)
            return decision["outcome"]
        gate_outcome = clock.run("register", trained.rows_trained, register)
        trained = None  # free the training set before scoring

    def score():
        features = pipeline.scoring_population(run, cutoff)
        served = pipeline.served_model(run)
        predictions, _ = pipeline.predict(run, served, features)
        return served, features, predictions
    served, features, predictions = clock.run("score", None, score, rows_after=lambda v: len(v[1]))
    reasons = clock.run("reasons", len(features), lambda: pipeline.explain(run, served, features))

    def publish():  # writing and exporting clv_scores count as scoring
        scores = pipeline.score_table(run, served, features, cutoff, predictions, reasons)
        pipeline.publish(run, scores)
        pipeline.export(scores, cutoff)
    start = time.perf_counter()
    publish()
    clock.stages["score"]["seconds"] = round(clock.stages["score"]["seconds"] + time.perf_counter() - start, 2)
    spread_source = clock.run("intervals", len(features), lambda: _time_intervals(served, features, predictions, cutoff))
    scored = len(features)
    features = predictions = reasons = None  # free them before monitoring
    clock.run("monitor", scored, lambda: monitor(warehouse, home / "monitor.json", "duckdb", config.MODEL_NAME,
                                                 horizon_days))
    scan_total = scans["orders"] + scans["events"]
    cycle = sum(v["seconds"] for v in clock.stages.values())
    return {
        "scoring_cutoff": str(cutoff),
        "customers_scored": scored,
        "rows_landed": rows_in,
        "orders": counts["orders"],
        "events": counts["events"],
        "cutoffs_built": cutoffs_built,
        "cutoffs_kept": cutoffs_kept,
        "gate_outcome": gate_outcome,
        "stages": clock.stages,
        "weekly_cycle_seconds": round(cycle, 2),
        "score_plus_reasons_seconds": round(clock.stages["score"]["seconds"] + clock.stages["reasons"]["seconds"], 2),
        "intervals_seconds": clock.stages["intervals"]["seconds"],
        "score_reasons_intervals_to_score_reasons": round(
            1 + clock.stages["intervals"]["seconds"] / max(clock.stages["score"]["seconds"] + clock.stages["reasons"]["seconds"], 1e-9), 3),
        "intervals_spread_source": spread_source,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "raw_scan_seconds": round(scan_total, 2),
        "raw_scan_seconds_by_table": {k: round(v, 2) for k, v in scans.items()},
        # customer_features and the models it reads, from dbt's own timings (the features stage above
        # also holds the labels, the training set and the dbt tests)
        "feature_build_seconds": round(feature_build_seconds, 2),
        "feature_build_seconds_per_cutoff": round(feature_build_seconds / max(cutoffs_built, 1), 2),
        "feature_build_to_scan_ratio": round(feature_build_seconds / scan_total, 2),
        "feature_model_seconds": _feature_model_seconds(built.dbt_result),
    }


def _feature_model_timings(build) -> dict[str, tuple]:
    """The execution interval of customer_features and of each model upstream of it, in one dbt result."""
    results = {r.node.unique_id: r for r in build.result.results}
    todo = [uid for uid in results if uid.endswith(".customer_features")]
    seen = set()
    while todo:
        uid = todo.pop()
        if uid in seen or uid not in results:
            continue
        seen.add(uid)
        todo += list(results[uid].node.depends_on.nodes)
    return {results[uid].node.name: (t.started_at, t.completed_at) for uid in seen
            if results[uid].node.resource_type == "model"
            for t in results[uid].timing if t.name == "execute" and t.started_at and t.completed_at}


def _feature_model_seconds(build) -> dict[str, float]:
    """Seconds each model of the feature build ran (two may run at once), slowest first."""
    seconds = {name: (stop - start).total_seconds() for name, (start, stop) in _feature_model_timings(build).items()}
    return {name: round(s, 2) for name, s in sorted(seconds.items(), key=lambda item: -item[1])}


def _feature_build_seconds(build) -> float:
    """Wall time during which customer_features or a model upstream of it was running, in one dbt result:
    the models' execution intervals merged (dbt runs two nodes at once, so a sum would count the time two
    feature families shared the cores twice)."""
    intervals = sorted(_feature_model_timings(build).values())
    busy, end = 0.0, None
    for start, stop in intervals:
        if end is None or start > end:
            busy += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            busy += (stop - end).total_seconds()
            end = stop
    return busy


def _parquet_rows(data_dir: Path) -> int:
    return sum(duckdb.sql(f"select count(*) from read_parquet('{data_dir / name}.parquet')").fetchall()[0][0]
               for name in ("customers", "orders", "events"))
