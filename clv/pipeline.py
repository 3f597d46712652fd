"""The weekly cycle's steps as plain functions: land, check freshness, build, train, register and gate,
score, publish and export. Each takes one `Run` (the settings, and the warehouse they resolve to).

The Prefect tasks in `flows/` wrap these steps (retries, time-outs, artifacts, the run logger) and
`clv bench scale` times the same functions, so the benchmark measures what production runs.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from clv import config, dbt_manifest
from clv.cloud import sagemaker_jobs
from clv.cloud.storage import Storage
from clv.ingest.freshness import check_source_freshness, write_freshness_report
from clv.ingest.sources import land_sources, run_sources
from clv.ingest.validation import InputValidationError, ValidationReport, write_report
from clv.rollout import model_decisions
from clv.settings import RunSettings
from clv.snapshots import SnapshotPlan, plan_for_warehouse
from clv.transform import dbt_vars, run_dbt
from clv.warehouse import score_contract
from clv.warehouse.embedded import scoring_cutoff
from clv.warehouse.engines import open_warehouse, resolve_target
from models_ml import base_forecast, registry, zoo
from models_ml.btyd import AliveModel
from models_ml.protocol import BASELINE
from models_ml.reasons import fallback_reasons, reasons_in_batches
from models_ml.scoring import build_score_table, check_publishable, discounted_margin_value
from models_ml.spread import Spread, distribution_columns
from models_ml.training import TrainingResult, serving_rows, train_and_evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One run's configuration: its settings and the warehouse they resolve to (engine and location)."""

    settings: RunSettings = field(default_factory=RunSettings)
    target: str = "duckdb"
    warehouse: str = ""

    @classmethod
    def of(cls, settings: RunSettings | None = None, **overrides) -> "Run":
        """The run of these settings: the target from them (else CLV_DBT_TARGET, else duckdb) and the
        warehouse file resolved to an absolute path (default $CLV_HOME/warehouse/clv.duckdb)."""
        settings = settings or RunSettings()
        if overrides:
            settings = RunSettings(**{**settings.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
        warehouse = str(Path(settings.warehouse or config.default_warehouse()).resolve())
        return cls(settings, resolve_target(settings.target), warehouse)

    def warehouse_interface(self):
        return open_warehouse(self.target, self.warehouse)

    @property
    def identity(self) -> str:
        """The warehouse as the model registry records it: the DuckDB file, or the server and database."""
        return self.warehouse_interface().identity()

    def read(self, sql: str, params=None) -> pd.DataFrame:
        return self.warehouse_interface().read(sql, params)


def _run_label() -> str:
    return f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"


# ---- land -------------------------------------------------------------------------------------------------

@dataclass
class Landed:
    loads: list  # clv.ingest.landing.LoadResult, one per entity landed
    reports: list[ValidationReport]
    report_path: Path | None


def land(run: Run, log: logging.Logger | logging.LoggerAdapter = log) -> Landed:
    """Land the run's inputs into the raw schema: stage, validate with the Great Expectations suites, then
    commit all of them, or none when a critical expectation fails (InputValidationError; its reports are
    written first). The validation report goes to $CLV_HOME/reports."""
    s = run.settings
    listed = run_sources(s.orders, s.customers, s.events, s.sources)
    destination = run.warehouse_interface()
    with destination.staging() as con:
        sink = destination.raw_sink(con)
        try:
            loaded, reports = land_sources(con, sink, listed, config.project_home() / "landing-cache")
        except InputValidationError as failure:
            _write_validation(failure.reports, log)
            raise
    path = _write_validation(reports, log)
    for result in loaded:
        log.info("%s: %d rows read, %d new; %d failed a check, %d of them new in quarantine (%s)", result.entity,
                 result.rows_read, result.rows_inserted, result.rows_quarantined, result.rows_quarantined_new,
                 result.source)
    return Landed(loaded, reports, path)


def _write_validation(reports: list[ValidationReport], log) -> Path | None:
    if not reports:
        return None
    path = write_report(reports, config.project_home() / "reports", _run_label())
    for report in reports:
        log.info("validation of %s from %s: %s (%d quarantined)", report.entity, report.source, report.status,
                 sum(report.quarantined.values()))
        for check in report.warnings:
            log.warning("%s: %s", report.entity, check.describe())
        for check in report.critical_failures:  # the run's failure (one error) names them all again
            log.warning("%s: refused: %s", report.entity, check.describe())
    log.info("validation report: %s", path)
    return path


# ---- freshness, build ----------------------------------------------------------------------------------------

def check_freshness(run: Run, log: logging.Logger | logging.LoggerAdapter = log) -> list:
    """dbt source freshness of the landed feeds: a stale feed is a warning; past its error threshold the
    run stops here (SourceFreshnessError), before features are built. Report under $CLV_HOME/reports."""
    checked = check_source_freshness(run.warehouse, run.target)
    path = write_freshness_report(checked, config.project_home() / "reports", _run_label())
    for check in checked:
        (log.warning if check.status == "warn" else log.info)("source freshness: %s", check.line())
    log.info("freshness report: %s", path)
    return checked


@dataclass
class Built:
    cutoff: date  # the scoring cutoff of this build
    plan: SnapshotPlan
    dbt_result: object  # dbt's RunExecutionResult (per-node timings)


def build(run: Run, full_refresh: bool = False, max_training_cutoffs: int | None = None,
          log: logging.Logger | logging.LoggerAdapter = log) -> Built:
    """The snapshot calendar of the landed data, then `dbt build`: staging, features at the scoring cutoff
    and at calendar cutoffs not built yet, labels whose window matured since, and their tests. Snapshots
    already built are kept; `full_refresh` rebuilds every one of them."""
    s = run.settings
    run.warehouse_interface().ensure_raw_schema()  # an older warehouse gains what dbt now reads
    plan = plan_for_warehouse(run.warehouse_interface().reader(), s.cutoff, s.horizon_days,
                              min_history_days=s.min_history_days, grid_months=s.snapshot_grid_months,
                              origins_wanted=s.backtest_origins, max_training_cutoffs=max_training_cutoffs)
    log.info("snapshot calendar: %d training cutoffs (%s .. %s); backtest at %d days, origins %s%s",
             len(plan.training_cutoffs), plan.training_cutoffs[0] if plan.training_cutoffs else "-",
             plan.training_cutoffs[-1] if plan.training_cutoffs else "-", plan.backtest.horizon_days,
             ", ".join(plan.backtest.origins) or "none", f" ({plan.backtest.note})" if plan.backtest.note else "")
    # the plan's scoring cutoff (the given one, or the last date of the order lines that count now) is the
    # build's: dbt never computes its own default
    variables = dbt_vars(plan.scoring_cutoff, s.horizon_days, plan.training_cutoffs, plan.label_horizons,
                         s.order_value_cap_percentile)
    # the dbt unit tests check the SQL on hand-made rows (make test runs them), not the week's data
    result = run_dbt(["build", "--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else [])],
                     warehouse=run.warehouse, variables=variables, target=run.target)
    return Built(scoring_cutoff(run.target, run.warehouse), plan, result)


def snapshot_plan(run: Run, cutoff) -> SnapshotPlan:
    """The calendar of the last build recomputed (not rebuilt), for a step that follows it in another flow."""
    s = run.settings
    return plan_for_warehouse(run.warehouse_interface().reader(), cutoff, s.horizon_days,
                              min_history_days=s.min_history_days, grid_months=s.snapshot_grid_months,
                              origins_wanted=s.backtest_origins)


def scoring_population(run: Run, cutoff) -> pd.DataFrame:
    """customer_features at the scoring cutoff, in customer order (a deterministic read)."""
    return run.read("select * from customer_features where cutoff_date = ? order by customer_id", [cutoff])


def recent_orders(run: Run, cutoff, days: int = 7) -> pd.DataFrame:
    """Orders of the `days` days up to the cutoff (the drift monitor's activity baseline)."""
    start = (pd.Timestamp(cutoff) - pd.Timedelta(days=days)).date()
    return run.read("select customer_id, order_date, purchase_value from int_orders "
                    "where order_date > ? and order_date <= ? order by customer_id, order_date", [start, cutoff])


# ---- train, register and gate -----------------------------------------------------------------------------

@dataclass
class Trained:
    no_change: bool
    version: str | None = None  # the version already trained on these rows, when no_change
    result: TrainingResult | None = None
    serving_rows: pd.DataFrame | None = None
    champion: str | None = None  # the champion version when training started

    @property
    def rows_trained(self) -> int:
        return self.result.rows_trained if self.result is not None else 0


def train(run: Run, plan: SnapshotPlan, log: logging.Logger | logging.LoggerAdapter = log) -> Trained:
    """Backtest the configuration against last year's spend and the champion's configuration on the
    strict protocol, then fit it on the snapshots labelled at the prediction horizon (here, or as a
    SageMaker training job when CLV_TRAINING_BACKEND=sagemaker). Nothing is trained when a version with
    this configuration was already trained on exactly these snapshots ("no change")."""
    s = run.settings
    config.use_project_tracking_store()
    specs = [s.model_spec] if s.model_spec else zoo.candidate_specs()
    training_set = run.read("select * from customer_training_set order by cutoff_date, customer_id, horizon_days")
    rows = serving_rows(training_set, plan.horizon_days, plan.serving_cutoffs or None)
    same = model_decisions.existing_version(s.model_name, rows, specs)
    if same is not None:
        log.info("no change: version %s was trained with this configuration on exactly these %d snapshot rows",
                 same, len(rows))
        return Trained(no_change=True, version=same)
    champion, champion_spec = model_decisions.champion_spec(s.model_name)
    fit = sagemaker_jobs.fit_on_sagemaker if sagemaker_jobs.training_backend() == "sagemaker" else None
    result = train_and_evaluate(training_set, plan, s.model_spec, champion_spec, s.bootstrap_resamples, fit=fit,
                                history_length_dependent=dbt_manifest.history_length_dependent_columns(),
                                candidate_specs=specs, gate_config=s.gate_config)
    log.info("type %s chosen (%s); fallback %s (%s)", result.spec["type"], result.type_choice.get("why"),
             result.fallback["type"], result.fallback["why"])
    log.info("trained %s on %d rows (cutoffs %s .. %s)", result.spec["type"], result.rows_trained,
             result.train_cutoffs[0], result.train_cutoffs[-1])
    return Trained(no_change=False, result=result, serving_rows=rows, champion=champion)


def register_and_gate(run: Run, trained: Trained, run_params: dict, population: pd.DataFrame,
                      recent: pd.DataFrame, log: logging.Logger | logging.LoggerAdapter = log) -> dict:
    """Register the new version in MLflow (with its drift baseline: its own scoring population and the
    week's orders) and run the promotion gates: champion (first version), challenger, not served, or
    rejected. A run that trained nothing returns outcome "no_change"."""
    if trained.no_change:
        return {"version": trained.version, "outcome": "no_change", "passed": None, "gates": [],
                "reason": f"version {trained.version} was trained with the same configuration on the same data"}
    config.use_project_tracking_store()
    registered = registry.log_and_register(trained.result, trained.serving_rows, run.settings.model_name,
                                           {**run_params, "warehouse": run.identity}, population, recent)
    decision = model_decisions.decide(trained.result, registered, trained.champion, run.settings.gate_config)
    decision["run_id"] = registered.run_id
    for gate in decision["gates"]:
        log.info("gate %s: %s (%s)", gate["gate"], "pass" if gate["passed"] else "FAIL", gate["detail"])
    return decision


# ---- score, publish, export -------------------------------------------------------------------------------

@dataclass
class Served:
    """The model that scores this run: the champion, or, while no model passed the gates, the fallback the
    last gated version chose from its backtest (last year's spend before any)."""
    name: str
    version: str
    model: object | None  # None for a fallback
    columns: list[str] = field(default_factory=list)
    fallback_spec: dict | None = None  # the fallback's spec (its fitted factor, for last year's spend scaled)
    why: str = ""
    predictive: dict | None = None  # its backtested distribution (training.predictive_record), None before any

    @property
    def spread(self) -> Spread | None:
        return Spread.from_dict(self.predictive["spread"]) if self.predictive else None


FORECAST_TABLE = "clv_forecast"
FIRST_FALLBACK = ({"type": BASELINE, "params": {}}, "no version has been gated yet: last year's spend")


def served_model(run: Run) -> Served:
    """The champion of the run's model name, loaded from the registry; without one, the fallback."""
    config.use_project_tracking_store()
    name = run.settings.model_name
    if registry.champion_version(name) is None:
        found = registry.latest_fallback_version(name)
        spec, why = (found[1], found[2]) if found else FIRST_FALLBACK
        predictive = registry.predictive_record(name, found[0], registry.FALLBACK_DISTRIBUTION) if found else None
        return Served(spec["type"], "fallback" if spec["type"] != BASELINE else "baseline", None,
                      fallback_spec=spec, why=why, predictive=predictive)
    model, version, columns = registry.load_model_by_alias(name, config.CHAMPION_ALIAS)
    return Served(name, version, model, list(columns), predictive=registry.predictive_record(name, version))


def fallback_model(run: Run, served: Served):
    """The served fallback, ready to predict: it learns nothing here (last year's spend scaled keeps the
    factor fitted when it was chosen; BTYD models fit on the scored cutoff's own customers)."""
    spec = served.fallback_spec or FIRST_FALLBACK[0]
    return zoo.build_model(spec, run.settings.horizon_days).fit(pd.DataFrame(), [])


def predict(run: Run, served: Served, features: pd.DataFrame):
    """The served model's 12-month predictions, with reasons when they come back from SageMaker batch
    scoring (else None: `explain` computes them). Returns (predictions, reasons or None)."""
    if served.model is None:
        return fallback_model(run, served).predict(features), None
    missing = [c for c in served.columns if c not in features.columns]
    if missing:
        raise KeyError(f"customer_features lacks column(s) the champion needs: {', '.join(missing)}")
    if sagemaker_jobs.scoring_backend() == "sagemaker":
        remote = sagemaker_jobs.batch_score_on_sagemaker(served.model, served.version, features)
        return remote["predicted_clv_12m"].to_numpy(float), (
            remote["top_reasons"].to_numpy(object), remote["reason_contributions"].to_numpy(object))
    return served.model.predict(features), None


def explain(run: Run, served: Served, features: pd.DataFrame, predictions=None):
    """The three strongest reasons per customer and their contributions (TreeSHAP for the model; a
    fallback states its own inputs)."""
    if served.model is None:
        return fallback_reasons(features, run.settings.horizon_days, served.name, predictions, served.why)
    return reasons_in_batches(served.model, features)


def score_table(run: Run, served: Served, features: pd.DataFrame, cutoff, predictions, reasons) -> pd.DataFrame:
    """`clv_scores` rows: predictions checked for plausibility (`check_publishable`), their predictive
    distribution (models_ml/spread.py), tiers, P(alive) and expected orders (BG/NBD), reasons, and the
    discounted margin value when the settings give a margin."""
    s = run.settings
    check_publishable(features["customer_id"], predictions, features["revenue_sum_365d"], s.horizon_days,
                      s.max_prediction_multiple)
    btyd = AliveModel(s.horizon_days).components(features)
    reasons, contributions = reasons
    spread = served.spread
    return build_score_table(features["customer_id"], cutoff, predictions, served.name, served.version,
                             pd.Timestamp.now(tz="UTC").tz_localize(None), s.high_tier_share, s.medium_tier_share,
                             p_alive=btyd["p_alive"], expected_orders=btyd["expected_orders"],
                             reasons=reasons, reason_contributions=contributions,
                             distribution=None if spread is None else distribution_columns(spread, predictions),
                             value=discounted_margin_value(predictions, s.horizon_days, s.margin_rate,
                                                           s.annual_discount_rate), horizon_days=s.horizon_days)


def distribution_summary(served: Served) -> dict | None:
    """How the served model's intervals held out of time, for the run summary (None without them)."""
    if not served.predictive:
        return None
    held = served.predictive.get("forecast_backtest", {})
    return {"horizon_days": served.predictive["spread"]["horizon_days"], "checked": served.predictive.get("checked", {}),
            "forecast_held": [r.get("held") for r in held.get("all", [])],
            "forecast_median_width_share": held.get("median_width_share_all")}


def forecast(served: Served, features: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """`clv_forecast` rows: the scored base's next-horizon revenue, whole and by tier, country and channel,
    with the 80% interval learned from the served model's backtest (models_ml/base_forecast.py)."""
    frame = features[[c for c in ("country", "acquisition_channel") if c in features]].reset_index(drop=True)
    frame["clv_tier"] = scores["clv_tier"].to_numpy()
    history = served.predictive["origin_totals"] if served.predictive else None
    return base_forecast.forecast_table(frame, scores["predicted_clv_12m"].to_numpy(float), served.spread, history,
                                        scores["cutoff_date"].iloc[0])


def score(run: Run, features: pd.DataFrame, cutoff) -> tuple[pd.DataFrame, Served]:
    """Score every customer known at the cutoff with the served model: (clv_scores rows, served model)."""
    if features.empty:
        raise ValueError(f"no customers known at cutoff {cutoff}: nothing to score")
    served = served_model(run)
    predictions, reasons = predict(run, served, features)
    if reasons is None:
        reasons = explain(run, served, features, predictions)
    return score_table(run, served, features, cutoff, predictions, reasons), served


def publish(run: Run, scores: pd.DataFrame, allow_older_cutoff: bool = False,
            forecast_rows: pd.DataFrame | None = None) -> None:
    """Replace `clv_scores` in one transaction (BI never reads a half-written table) and keep the history;
    refused when the cutoff is older than the published one, unless `allow_older_cutoff`. Then replace
    `clv_forecast` with `forecast_rows` (its own transaction; its rows carry their cutoff), and, on DuckDB,
    the serving copy BI tools read (clv/warehouse/serving.py)."""
    warehouse = run.warehouse_interface()
    warehouse.publish_scores(scores, allow_older_cutoff)
    if forecast_rows is not None:
        warehouse.replace_table(FORECAST_TABLE, score_contract.conform(forecast_rows, FORECAST_TABLE), declared=True)
    warehouse.refresh_serving_copy()  # DuckDB: the file BI reads, which never blocks a run


def export(scores: pd.DataFrame, cutoff) -> str:
    """clv_scores as parquet under the storage root (CLV_STORAGE_URL: a directory, default
    $CLV_HOME/exports, or s3://...), for tools that pick files up rather than query the warehouse."""
    target = Storage.from_env(config.project_home() / "exports")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "clv_scores.parquet"
        scores.to_parquet(local, index=False)
        return target.put(local, f"clv_scores/cutoff={pd.Timestamp(cutoff).date()}/clv_scores.parquet")


def published_model(run: Run) -> tuple[str, str] | None:
    """(model_name, model_version) of the scores BI reads now, or None before the first publish."""
    published = run.warehouse_interface()
    if not published.has("clv_scores"):
        return None
    row = published.read("select model_name, model_version from clv_scores limit 1")
    return None if row.empty else (str(row.iloc[0, 0]), str(row.iloc[0, 1]))

