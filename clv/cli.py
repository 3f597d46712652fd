"""`clv`: the command line of the CLV platform."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date
from pathlib import Path

from clv import config
from clv.settings import DEFAULTS
from clv.warehouse.engines import TARGETS

# Offline-friendly defaults, set before Prefect or dbt are imported.
_QUIET_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clv-platform")
    except PackageNotFoundError:  # a checkout without `make setup`
        return "unknown (not installed)"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _cutoff(text: str) -> date:
    """A scoring cutoff: a date, not in the future (checked against the landed orders at the build)."""
    day, today = _date(text), date.today()
    if day > today:
        raise argparse.ArgumentTypeError(f"{text} is in the future (today is {today}): its orders have not "
                                         "happened yet")
    return day


def _cap_percentile(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number or 'none': {text!r}") from exc
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]: {text!r}")
    return value


def _existing_path(text: str) -> str:
    """A file that exists (used as is, brackets and all), or a pattern with `*`/`?` wildcards."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory: give a file, or a pattern such as {path / '*.parquet'}")
    if path.exists():
        return str(path.resolve())
    if "*" in text or "?" in text:
        return text
    raise argparse.ArgumentTypeError(f"file not found: {text}")


def _cmd_run(args) -> int:
    from clv.flow_entrypoints import load_flow
    from clv.run_summary import format_summary

    summary = load_flow("weekly-clv")(
        orders=args.orders, customers=args.customers, events=args.events, sources=args.sources,
        cutoff=args.cutoff, horizon_days=args.horizon_days,
        warehouse=str(args.warehouse) if args.warehouse else None,
        order_value_cap_percentile=args.order_value_cap_percentile,
        high_tier_share=args.high_tier_share, medium_tier_share=args.medium_tier_share, target=args.target,
        settings_file=args.settings, retrain=args.retrain, full_refresh=args.full_refresh,
        allow_older_cutoff=args.allow_older_cutoff, new_registry=args.new_registry,
        demo=args.demo,
    )
    print("\n" + format_summary(summary))
    return 0


def _cmd_retrain(args) -> int:
    from clv.flow_entrypoints import load_flow

    result = load_flow("retrain-clv")(settings_file=args.settings, warehouse=str(args.warehouse) if args.warehouse else None,
                          target=args.target, reason=args.reason)
    print(f"\nRetrain: {result['outcome']} ({result['reason']})")
    return 0


def _cmd_features(args) -> int:
    from clv.flow_entrypoints import load_flow

    result = load_flow("build-features")(
        cutoff=args.cutoff, horizon_days=args.horizon_days or DEFAULTS.horizon_days, target=args.target,
        warehouse=str(args.warehouse) if args.warehouse else None,
        orders=args.orders, customers=args.customers, events=args.events, sources=args.sources,
        order_value_cap_percentile=args.order_value_cap_percentile,
    )
    print(f"\nFeatures built on {result['target']} ({result['warehouse']}), scoring cutoff {result['cutoff']}")
    for cutoff_date, n in result["feature_rows_by_cutoff"].items():
        print(f"- customer_features at {cutoff_date}: {n:,} customers")
    return 0


def _activity_size(signal: dict) -> str:
    if signal.get("last_year_ratio") is None:
        return f"ratio {signal['ratio']:.2f} to the champion's week"
    return (f"ratio {signal['ratio']:.2f} to the champion's week after last year's change between the same weeks "
            f"({signal['unadjusted_ratio']:.2f} / {signal['last_year_ratio']:.2f})")


def _cmd_monitor(args) -> int:
    from clv.flow_entrypoints import load_flow

    report = load_flow("monitor-drift")(warehouse=str(args.warehouse) if args.warehouse else None, json_path=args.json,
                          target=args.target)
    if not report.get("monitored"):
        print(f"\nDrift not monitored: {report.get('note')}")
    else:
        served = (f"served: {report['model_version']}" if str(report["model_version"]).startswith("fallback")
                  else f"champion {report['model_name']} v{report['model_version']}")
        print(f"\nDrift status: {report['status']} ({served}, cutoff {report['cutoff']}); prediction PSI "
              f"{report['prediction']['psi']:.3f}")
        for name in report["drifted_features"]:
            size = (f"PSI {report['features'][name]['psi']:.3f}" if name in report["features"]
                    else _activity_size(report["activity"][name]))
            print(f"- {name}: {size}")
    performance = report["performance"]
    print("Performance from matured labels: " + ("DEGRADED: " + "; ".join(performance["reasons"])
                                                 if performance["degraded"] else
                                                 f"no drop ({performance['measured_runs']} measured runs)"))
    if args.json:
        print(f"report: {args.json}")
    return 0


def _cmd_loads(args) -> int:
    from clv.ingest.loads import list_loads, undo_load

    target = args.target or os.environ.get("CLV_DBT_TARGET", "duckdb")
    warehouse = str(Path(args.warehouse or config.default_warehouse()).resolve())
    if args.action == "list":
        loads = list_loads(target, warehouse, args.limit)
        print(loads.to_string(index=False) if not loads.empty else "no loads yet")
        return 0
    if not args.load_id:
        raise ValueError("clv loads undo needs a LOAD_ID (`clv loads list` shows them)")
    result = undo_load(target, warehouse, args.load_id)
    print(f"load {args.load_id} ({result['entity']}) undone: "
          + ", ".join(f"{n:,} {what}" for what, n in result["removed"].items()))
    print("feature snapshots already built from it are kept: rebuild them with `clv run --full-refresh`")
    return 0


def _who() -> str:
    import getpass

    return os.environ.get("CLV_OPERATOR") or getpass.getuser()


def _cmd_promote(args) -> int:
    from models_ml import registry

    config.use_project_tracking_store()
    previous = registry.promote(args.model_name, args.version, _who(), args.reason, force=args.force)
    print(f"{args.model_name}: champion is now version {args.version} (was {previous or 'none'})")
    return 0


def _cmd_rollback(args) -> int:
    from models_ml import registry

    config.use_project_tracking_store()
    restored = registry.rollback(args.model_name, _who(), args.reason)
    print(f"{args.model_name}: champion rolled back to version {restored}")
    return 0


def _cmd_shadow(args) -> int:
    from clv.flow_entrypoints import load_flow

    result = load_flow("shadow-run")(warehouse=str(args.warehouse) if args.warehouse else None,
                         max_mean_shift=args.max_mean_shift, target=args.target)
    if result.get("skipped"):
        print(f"\nShadow run skipped: {result['reason']}")
        return 0
    print(f"\nShadow run {'passed' if result['passed'] else 'FAILED'}: champion v{result['champion_version']} vs "
          f"challenger v{result['challenger_version']} on {result['customers']:,} customers; mean shift "
          f"{result['mean_shift']:.1%}, rank correlation {result['spearman']:.3f}")
    return 0 if result["passed"] else 3


def _cmd_notifications(args) -> int:
    from prefect.settings import PREFECT_API_URL

    from clv.notifications import setup_failure_notifications

    if not PREFECT_API_URL.value():
        raise SystemExit("clv notifications: error: PREFECT_API_URL is not set: point it at the Prefect server "
                         "your deployments run on (a run without a server has no automations)")
    created = setup_failure_notifications(args.webhook_url, allow_private_urls=not args.public_only)
    print(f"block {created['block']} ({created['block_id']}) and automation '{created['automation']}' "
          f"({created['automation_id']}) on {PREFECT_API_URL.value()}: failed, crashed or timed-out CLV runs "
          f"are posted to {args.webhook_url}")
    return 0


def _cmd_settings(args) -> int:
    """`clv settings push`: the settings file into the Prefect Variable the deployments read;
    `clv settings show`: what a deployed run would use (the file, with the Variable over it)."""
    from prefect.settings import PREFECT_API_URL

    from clv.settings import load_settings, push_to_variable

    if not PREFECT_API_URL.value():
        raise SystemExit(f"clv settings: error: PREFECT_API_URL is not set: point it at the Prefect server your "
                         f"deployments run on (the Variable {args.variable} lives there)")
    if args.settings_command == "push":
        stored = push_to_variable(args.settings, args.variable)
        print(f"{len(stored)} settings of {args.settings} stored as the Prefect Variable {args.variable} on "
              f"{PREFECT_API_URL.value()} (the UI's Variables page edits them; deployed runs read them over the file)")
        return 0
    settings = load_settings(args.settings if Path(args.settings).exists() else None, args.variable)
    for name, value in sorted(vars(settings).items()):
        if value not in (None, {}):
            print(f"{name}: {value}")
    return 0


def _cmd_segments(args) -> int:
    from clv.rollout.campaigns import write_segments

    table = write_segments(args.warehouse, args.kind, args.size, args.seed, target=args.target)
    counts = table["chosen_by" if args.kind == "canary" else "arm"].value_counts().to_dict()
    print(f"campaign_{args.kind}: {len(table):,} customers ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})")
    return 0


def _cmd_ab_analyze(args) -> int:
    import json

    from clv.rollout.campaigns import analyze_ab

    result = analyze_ab(args.warehouse, args.observed, args.min_detectable_lift, target=args.target)
    print(f"A (champion) {result['customers_control']:,} customers, mean {result['mean_control']:,.2f}; "
          f"B (challenger) {result['customers_treatment']:,}, mean {result['mean_treatment']:,.2f}")
    print(f"lift {result['lift']:+.1%}, Welch t = {result['t_statistic']:.3f}, p = {result['p_value']:.4f}, "
          f"{result['confidence']:.0%} CI of the difference [{result['ci_low']:,.2f}, {result['ci_high']:,.2f}]")
    print(f"customers needed per arm to detect a {result['detectable_lift']:.1%} lift: "
          f"{result['customers_needed_per_arm']} -> sample {'large enough' if result['sample_large_enough'] else 'too small'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_synth(args) -> int:
    from clv.synth import SHOP_PROFILES, SynthConfig, write_synthetic

    shop = {"days": 730, **SHOP_PROFILES[args.shop]}  # the profile's values, then any option given explicitly
    for option in ("days", "season_amplitude", "surge_share", "surge_days", "tracked_share"):
        if getattr(args, option) is not None:
            shop[option] = getattr(args, option)
    paths = write_synthetic(SynthConfig(customers=args.customers, seed=args.seed, start=args.start,
                                        rate_multiplier=args.rate_multiplier, shift_day=args.shift_day,
                                        shift_rate=args.shift_rate, shift_value=args.shift_value,
                                        future_days=args.future_days, **shop),
                            Path(args.out), latent=args.latent)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_bench(args) -> int:
    import json

    from clv.bench import bench_accuracy, bench_features, bench_scale

    workdir = Path(args.workdir or config.project_home() / "bench")
    if args.benchmark == "scale":
        result = bench_scale(args.customers, Path(args.json), workdir, Path(args.data) if args.data else None,
                             weeks=args.weeks)
        print(json.dumps({k: result[k] for k in ("customers", "orders", "events", "cutoffs_built",
                                                 "weekly_cycle_seconds", "score_plus_reasons_seconds",
                                                 "peak_rss_mb", "raw_scan_seconds", "feature_build_to_scan_ratio")},
                         indent=2))
        for week in result["weeks"]:
            print(f"week {week['week']} (cutoff {week['scoring_cutoff']}, {week['rows_landed']:,} rows landed, "
                  f"{week['cutoffs_built']} cutoffs built): {week['weekly_cycle_seconds']:.1f} s, "
                  f"peak {week['peak_rss_mb']:,.0f} MB")
            for stage, numbers in week["stages"].items():
                print(f"  {stage:<9} {numbers['seconds']:>8.1f} s  {numbers['rows_per_s'] or 0:>12,} rows/s")
        print(f"written to {args.json}")
        return 0
    if args.benchmark == "features":
        result = bench_features(args.customers, Path(args.json), workdir,
                                Path(args.data) if args.data else None, args.training_snapshots)
    else:
        result = bench_accuracy(args.dataset, Path(args.json), workdir, args.customers,
                                Path(args.report) if args.report else None, args.tune_trials)
        result = {k: v for k, v in result.items() if k != "slices"}
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clv", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks instead of one error line (for bug reports)")
    parser.add_argument("--verbose", action="store_true",
                        help="show dbt's own output in full (default: one line per dbt node, warnings and errors)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_build_options(command, bundled_default):
        command.add_argument("--orders", type=_existing_path,
                             help="orders file (parquet/CSV/JSON lines; globs allowed)"
                             + ("; required unless --sources, --settings or --demo names the inputs"
                                if bundled_default else "; default: none, use what is landed"))
        command.add_argument("--sources", type=_existing_path,
                             help="sources file (YAML): files on disk or S3, PostgreSQL tables, and their column "
                                  "mapping to the input contract (see sources.example.yml)")
        command.add_argument("--customers", type=_existing_path, help="customers file (optional)")
        command.add_argument("--events", type=_existing_path, help="web/app events file (optional)")
        command.add_argument("--cutoff", type=_cutoff,
                             help="scoring cutoff date, up to 7 days after the last order (default: the last order "
                                  "date)")
        command.add_argument("--horizon-days", type=int, help=f"prediction horizon in days (default {DEFAULTS.horizon_days})")
        command.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
        command.add_argument("--order-value-cap-percentile", type=_cap_percentile,
                             help="cap purchase order values at this percentile of orders up to each cutoff "
                                  f"(default {DEFAULTS.order_value_cap_percentile}; 'none' disables the cap)")

    run = sub.add_parser("run", help="run the weekly pipeline: land, dbt build, (train + gates), score")
    add_build_options(run, True)
    run.add_argument("--target", choices=TARGETS,
                     help="warehouse engine (default CLV_DBT_TARGET or duckdb; postgres: CLV_PG_* settings, "
                          "redshift: CLV_REDSHIFT_* and CLV_STORAGE_URL)")
    run.add_argument("--high-tier-share", type=float,
                     help=f"share of customers (by predicted value) in the high tier (default {DEFAULTS.high_tier_share})")
    run.add_argument("--medium-tier-share", type=float,
                     help=f"share of customers in the medium tier, after the high tier (default {DEFAULTS.medium_tier_share})")
    run.add_argument("--settings", type=_existing_path,
                     help="settings file (YAML, see clv-settings.example.yml): inputs, warehouse, options")
    run.add_argument("--demo", action="store_true",
                     help="run on the bundled Online Retail II orders (`make run`); never with a shop's inputs")
    run.add_argument("--retrain", action="store_true",
                     help="train and gate a new version even though a champion exists")
    run.add_argument("--full-refresh", action="store_true",
                     help="rebuild every feature and label snapshot (default: keep those already built)")
    run.add_argument("--allow-older-cutoff", action="store_true",
                     help="publish scores even when clv_scores holds a newer cutoff (re-publishing an old week)")
    run.add_argument("--new-registry", action="store_true",
                     help="start a new MLflow registry although the warehouse publishes scores of a model the store "
                          "lacks (default: refuse, the store is probably the wrong one)")
    run.set_defaults(func=_cmd_run)

    retrain = sub.add_parser("retrain", help="train and gate a new version on the landed data, if anything is new")
    retrain.add_argument("--settings", type=_existing_path, help="settings file (YAML)")
    retrain.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    retrain.add_argument("--target", choices=TARGETS,
                         help="warehouse engine (default: the settings file, else CLV_DBT_TARGET or duckdb)")
    retrain.add_argument("--reason", default="manual", help="why (a performance trigger always retrains)")
    retrain.set_defaults(func=_cmd_retrain)

    features = sub.add_parser("features", help="build the feature and label tables only (dbt build)")
    add_build_options(features, False)
    features.add_argument("--target", choices=TARGETS,
                          default=os.environ.get("CLV_DBT_TARGET", "duckdb"),
                          help="warehouse engine (default CLV_DBT_TARGET or duckdb; postgres: CLV_PG_* settings, "
                               "redshift: CLV_REDSHIFT_* and CLV_STORAGE_URL)")
    features.set_defaults(func=_cmd_features)

    loads = sub.add_parser("loads", help="list the latest loads, or undo one (raw rows, quarantine, watermark, record)")
    loads.add_argument("action", choices=["list", "undo"], help="list the latest loads, or undo one")
    loads.add_argument("load_id", nargs="?", help="the load to undo (from `clv loads list`)")
    loads.add_argument("--limit", type=int, default=20, help="loads listed (default 20)")
    loads.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    loads.add_argument("--target", choices=TARGETS,
                       help="warehouse engine (default CLV_DBT_TARGET or duckdb)")
    loads.set_defaults(func=_cmd_loads)

    promote = sub.add_parser("promote", help="point the champion alias at a registered model version")
    promote.add_argument("version", help="model version to promote")
    promote.add_argument("--reason", required=True, help="why (recorded on the version with who and when)")
    promote.add_argument("--model-name", default=config.MODEL_NAME, help=f"registered model (default {config.MODEL_NAME})")
    promote.add_argument("--force", action="store_true",
                         help="promote a version that failed its gates or was never gated (recorded on the version)")
    promote.add_argument("--warehouse", type=Path, help="the warehouse whose run lock the promotion takes "
                                                        f"(default {config.default_warehouse()})")
    promote.set_defaults(func=_cmd_promote)

    rollback = sub.add_parser("rollback", help="give the champion alias back to the previous champion")
    rollback.add_argument("--reason", required=True, help="why (recorded on the version rolled back)")
    rollback.add_argument("--model-name", default=config.MODEL_NAME, help=f"registered model (default {config.MODEL_NAME})")
    rollback.add_argument("--warehouse", type=Path, help="the warehouse whose run lock the rollback takes "
                                                         f"(default {config.default_warehouse()})")
    rollback.set_defaults(func=_cmd_rollback)

    shadow = sub.add_parser("shadow", help="score the latest population with champion and challenger side by side")
    shadow.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    shadow.add_argument("--max-mean-shift", type=float, default=0.15,
                        help="largest relative change of the mean prediction that passes (default 0.15)")
    shadow.add_argument("--target", choices=TARGETS, help="warehouse engine (default CLV_DBT_TARGET or duckdb)")
    shadow.set_defaults(func=_cmd_shadow)

    segments = sub.add_parser("segments", help="campaign segments from the latest shadow run (canary or A/B)")
    segments.add_argument("--kind", choices=["canary", "ab"], required=True,
                          help="canary: a target list scored by the challenger; ab: a random two-arm split")
    segments.add_argument("--size", type=int, help="canary target list size (default: 10%% of customers)")
    segments.add_argument("--seed", type=int, default=1, help="A/B assignment seed (default 1)")
    segments.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    segments.add_argument("--target", choices=TARGETS, help="warehouse engine (default CLV_DBT_TARGET or duckdb)")
    segments.set_defaults(func=_cmd_segments)

    ab = sub.add_parser("ab-analyze", help="lift, Welch's t-test and CI of an A/B campaign")
    ab.add_argument("--observed", required=True, help="file with customer_id and revenue observed after the campaign")
    ab.add_argument("--min-detectable-lift", type=float, help="lift the test should detect (default: the observed one)")
    ab.add_argument("--json", help="write the result as JSON")
    ab.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    ab.add_argument("--target", choices=TARGETS, help="warehouse engine (default CLV_DBT_TARGET or duckdb)")
    ab.set_defaults(func=_cmd_ab_analyze)

    monitor = sub.add_parser("monitor", help="drift of the latest scoring run against the champion's baseline")
    monitor.add_argument("--warehouse", type=Path, help=f"DuckDB file (default {config.default_warehouse()})")
    monitor.add_argument("--json", help="also write the report as JSON to this file")
    monitor.add_argument("--target", choices=TARGETS,
                         default=os.environ.get("CLV_DBT_TARGET", "duckdb"),
                         help="warehouse engine (default CLV_DBT_TARGET or duckdb)")
    monitor.set_defaults(func=_cmd_monitor)

    bench = sub.add_parser("bench", help="benchmarks that write JSON")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    bench_scale = bench_sub.add_parser("scale", help="the weekly cycle stage by stage on a synthetic shop of N customers")
    bench_scale.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers (default 1M)")
    bench_scale.add_argument("--json", required=True, help="where to write the JSON result")
    bench_scale.add_argument("--weeks", type=int, default=1,
                             help="weekly cycles: week 1 lands two years, each further week the next 7 days (default 1)")
    bench_scale.add_argument("--data", help="reuse a `clv synth` directory instead of generating")
    bench_scale.add_argument("--workdir", help="scratch directory (default $CLV_HOME/bench)")
    bench_scale.set_defaults(func=_cmd_bench)
    bench_features = bench_sub.add_parser("features", help="dbt feature build time vs a bare scan of the same tables")
    bench_features.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers (default 1M)")
    bench_features.add_argument("--json", required=True, help="where to write the JSON result")
    bench_features.add_argument("--data", help="reuse a `clv synth` directory instead of generating")
    bench_features.add_argument("--workdir", help="scratch directory (default $CLV_HOME/bench)")
    bench_features.add_argument("--training-snapshots", type=int, default=3,
                                help="training cutoffs built besides the scoring cutoff (default 3)")
    bench_features.set_defaults(func=_cmd_bench)
    bench_accuracy = bench_sub.add_parser("accuracy", help="every model on one strict temporal holdout (JSON + HTML)")
    bench_accuracy.add_argument("--dataset", choices=["online-retail", "cdnow", "synthetic", "synthetic-seasonal"], required=True,
                                help="which data: Online Retail I+II, CDNOW, or a synthetic shop with an oracle")
    bench_accuracy.add_argument("--json", required=True, help="where to write the JSON result")
    bench_accuracy.add_argument("--report", help="HTML report path (default: the JSON path with .html)")
    bench_accuracy.add_argument("--customers", type=int, default=20000, help="synthetic customers (default 20k)")
    bench_accuracy.add_argument("--workdir", help="scratch directory (default $CLV_HOME/bench)")
    bench_accuracy.add_argument("--tune-trials", type=int, default=0,
                                help="also evaluate xgboost_tuned: Optuna search with this many trials on a "
                                     "temporal validation split of the training data (logged to MLflow)")
    bench_accuracy.set_defaults(func=_cmd_bench)

    settings = sub.add_parser("settings", help="the team's settings in the Prefect UI (a Prefect Variable)")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True)
    for action, text in (("push", "store the settings file as the Prefect Variable the deployments read"),
                         ("show", "the settings a deployed run uses: the file, with the Variable's over it")):
        command = settings_sub.add_parser(action, help=text)
        command.add_argument("--settings", default="clv-settings.yml", help="settings file (default clv-settings.yml)")
        command.add_argument("--variable", default="clv_settings", help="Prefect Variable (default clv_settings)")
        command.set_defaults(func=_cmd_settings)

    notifications = sub.add_parser("notifications", help="notify a webhook when a deployed CLV run fails")
    notifications_sub = notifications.add_subparsers(dest="notifications_command", required=True)
    setup = notifications_sub.add_parser("setup", help="create or replace the webhook block and the automation "
                                                       "'notify when a CLV run fails' on PREFECT_API_URL")
    setup.add_argument("--webhook-url", required=True,
                       help="where to POST {text, subject, body} as JSON (Slack and Teams read 'text')")
    setup.add_argument("--public-only", action="store_true",
                       help="refuse webhooks on private or loopback addresses (Prefect's SSRF guard)")
    setup.set_defaults(func=_cmd_notifications)

    synth = sub.add_parser("synth", help="write a synthetic shop (orders, customers, events) as parquet")
    synth.add_argument("--customers", type=int, required=True, help="number of customers")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--seed", type=int, default=7, help="random seed (default 7): the same seed, the same shop")
    synth.add_argument("--start", type=_date, default=date(2023, 1, 1), help="first day of the period")
    synth.add_argument("--shop", choices=["stationary", "seasonal-growing"], default="stationary",
                       help="kind of shop: stationary (default), or seasonal-growing: a November-December peak, 40%% "
                            "of customers acquired in the last six months, browsing tracked for three quarters")
    synth.add_argument("--days", type=int, help="length of the period in days (default 730)")
    synth.add_argument("--season-amplitude", type=float,
                       help="November-December purchase rate is 1 + this times the rest of the year's (default 0)")
    synth.add_argument("--surge-share", type=float, help="share of customers signing up in the last --surge-days")
    synth.add_argument("--surge-days", type=int, help="length of the acquisition surge in days (default 180)")
    synth.add_argument("--tracked-share", type=float, help="share of customers whose browsing is tracked (default 1)")
    synth.add_argument("--future-days", type=int, default=0,
                       help="simulate the customers this many days past the period; their orders then go to "
                            "future_orders.parquet (the truth to check published scores against)")
    synth.add_argument("--latent", action="store_true",
                       help="also write latent.parquet: each customer's true rate, dropout and order value")
    synth.add_argument("--rate-multiplier", type=float, default=1.0,
                       help="multiply every purchase rate (e.g. 3 for a shifted population in drift demos)")
    synth.add_argument("--shift-day", type=int,
                       help="day of the period from which --shift-rate and --shift-value apply (a shop that changes)")
    synth.add_argument("--shift-rate", type=float, default=1.0, help="purchase-rate multiplier from --shift-day on")
    synth.add_argument("--shift-value", type=float, default=1.0, help="order-value multiplier from --shift-day on")
    synth.set_defaults(func=_cmd_synth)
    return parser


# commands that change the warehouse or what it serves: one at a time per warehouse (its run lock)
WRITING_COMMANDS = ("run", "retrain", "features", "monitor", "shadow", "loads", "promote", "rollback")
FLOW_COMMANDS = ("run", "retrain", "features", "monitor", "shadow")


def _warehouse_lock(args):
    """The DuckDB warehouse's run lock, taken before Prefect starts so that a second run answers at
    once (the flows take it again, re-entrantly; server warehouses are locked inside the flows)."""
    from contextlib import nullcontext

    if args.command not in WRITING_COMMANDS:
        return nullcontext()
    warehouse = _warehouse(args)
    if warehouse.path is None:
        return nullcontext()
    return warehouse.run_lock(f"clv {args.command}")


def _warehouse(args):
    """The warehouse a command works on (its settings file, options and environment)."""
    from clv.settings import load_settings
    from clv.warehouse.engines import open_warehouse

    settings = load_settings(getattr(args, "settings", None))
    target = getattr(args, "target", None) or settings.target
    return open_warehouse(target, getattr(args, "warehouse", None) or settings.warehouse)


READING_COMMANDS = ("retrain", "monitor", "shadow", "segments", "ab-analyze")  # need what a run has written


def _check_warehouse_first(args) -> None:
    """Commands that read what earlier runs wrote say so at once when the DuckDB file is not there."""
    if args.command not in READING_COMMANDS:
        return
    warehouse = _warehouse(args)
    if not warehouse.exists():
        raise FileNotFoundError(f"warehouse {warehouse.describe()} does not exist: run `clv run` first")


def _check_inputs_first(args) -> None:
    """The local input files of `clv run` / `clv features` are checked (found, readable, complete, required
    columns) before Prefect and dbt start, so the usual mistakes answer in a second."""
    if args.command not in ("run", "features"):
        return
    from clv.settings import check_demo_choice, load_settings
    from clv.ingest.sources import preflight, run_sources

    settings = load_settings(getattr(args, "settings", None), orders=args.orders, customers=args.customers,
                             events=args.events, sources=args.sources)
    if args.command == "run":
        check_demo_choice(settings.has_inputs, args.demo)
    preflight(run_sources(settings.orders, settings.customers, settings.events, settings.sources))


def _console_lines_below_the_progress_line() -> None:
    """Every console log handler (ours and Prefect's) first takes the progress status line away (it is
    redrawn within a second), so log lines never run into it."""
    from clv import progress

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict))]
    for handler in {h for logger in loggers for h in getattr(logger, "handlers", [])}:
        if not isinstance(handler, logging.StreamHandler) or getattr(handler, "_clv_progress", False):
            continue
        if isinstance(handler, logging.FileHandler):
            continue
        emit = handler.emit

        def emit_clear(record: logging.LogRecord, emit=emit) -> None:
            shown = progress.current()
            if shown is None:
                emit(record)
            else:
                with shown.holding_the_line():
                    emit(record)
        handler.emit, handler._clv_progress = emit_clear, True


def _with_run_name(record: logging.LogRecord) -> bool:
    """Adds the Prefect task or flow run a line belongs to (`[land_inputs-0]`), empty outside runs."""
    name = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
    record.run_name = f" [{name}]" if name else ""
    return True


_USER_ERRORS_QUIET = False
# Prefect's console lines for a run that SIGTERM stopped (the CLI's own error line says so once; the Prefect
# UI keeps them)
STOPPED_BY_A_SIGNAL = ("Execution was aborted by a termination signal",)


def _drop_tracebacks_of_user_errors(expected: tuple[type, ...]) -> None:
    """Log records (Prefect's task and flow failures included) keep their one-line message but lose the
    traceback when the exception is one the CLI reports in one line (its last line says what to do;
    `--debug` keeps tracebacks)."""
    global _USER_ERRORS_QUIET
    if _USER_ERRORS_QUIET:  # once per process (tests call main() many times)
        return
    _USER_ERRORS_QUIET = True
    make_record = logging.getLogRecordFactory()

    def record_without_traceback(*args, **kwargs):
        record = make_record(*args, **kwargs)
        if record.exc_info and isinstance(record.exc_info[1], expected):
            record.exc_info, record.exc_text = None, None
        return record

    logging.setLogRecordFactory(record_without_traceback)
    names = tuple(f"{kind.__name__}{sep}" for kind in expected for sep in ("(", ":"))

    def not_a_repeat_of_the_error_line(record: logging.LogRecord) -> bool:
        # Prefect reports a failed task and flow three times; the CLI's error line says it once
        return not (record.name.startswith(("prefect.task_runs", "prefect.flow_runs"))
                    and any(name in record.getMessage() for name in names + STOPPED_BY_A_SIGNAL))

    for handler in logging.getLogger().handlers:
        handler.addFilter(not_a_repeat_of_the_error_line)


def main(argv: list[str] | None = None) -> int:
    for key, value in _QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call otherwise
    args = build_parser().parse_args(argv)
    # a log handler that cannot write (a full disk) drops the line instead of printing a traceback
    logging.raiseExceptions = bool(getattr(args, "debug", False))
    if args.verbose:
        os.environ["CLV_DBT_VERBOSE"] = "1"
    for handler in [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]:  # ours
        handler.addFilter(_with_run_name)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(run_name)s: %(message)s"))
    if (getattr(args, "horizon_days", 1) or 1) < 1:
        print(f"clv {args.command}: error: --horizon-days must be at least 1 (got {args.horizon_days})", file=sys.stderr)
        return 2
    shares = (getattr(args, "high_tier_share", None) or DEFAULTS.high_tier_share,
              getattr(args, "medium_tier_share", None) or DEFAULTS.medium_tier_share)
    if not (all(0 <= share <= 1 for share in shares) and sum(shares) <= 1):
        print(f"clv {args.command}: error: tier shares must lie in [0, 1] and add up to at most 1", file=sys.stderr)
        return 2
    from contextlib import ExitStack

    from clv.warehouse.run_lock import WarehouseBusyError
    from clv.settings import SettingsError

    with ExitStack() as held:
        try:  # first of all, so that a busy warehouse answers at once
            held.enter_context(_warehouse_lock(args))
        except (WarehouseBusyError, SettingsError) as exc:
            if args.debug:
                raise
            print(f"clv {args.command}: error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            return _storage_fault(args, exc)
        from mlflow.exceptions import MlflowException
        from psycopg2 import Error as PostgresError

        from clv.ingest.contract import ContractError
        from clv.ingest.freshness import StaleSourceError
        from clv.transform import DbtBuildError

        reported = (ContractError, DbtBuildError, LookupError, ValueError, ConnectionError, PostgresError,
                    MlflowException, WarehouseBusyError, StaleSourceError, FileNotFoundError)
        if not args.debug:
            _drop_tracebacks_of_user_errors(reported)
        from clv.termination import Terminated, as_terminated

        try:
            try:
                _check_warehouse_first(args)
                _check_inputs_first(args)
                if args.command in FLOW_COMMANDS:
                    from clv import progress, termination
                    from clv.prefect_server import start_temporary_server

                    start_temporary_server()  # ends with this process, even when it is killed
                    held.callback(progress.disable)
                    progress.enable(sys.stderr)
                    _console_lines_below_the_progress_line()
                    termination.install()
                return args.func(args)
            except BaseException as exc:  # whatever came up, a run that SIGTERM stopped says so
                stopped = as_terminated(exc)
                if stopped is None or stopped is exc:
                    raise
                raise stopped from exc
        except Terminated as exc:
            if args.debug:
                raise
            print(f"clv {args.command}: error: {exc.say()}", file=sys.stderr)
            return 128 + exc.signum
        except reported as exc:
            if args.debug:
                raise
            from clv import config, storage_faults

            said = storage_faults.describe(exc, config.project_home()) or exc  # a dbt build on a full disk
            print(f"clv {args.command}: error: {said}", file=sys.stderr)
            return 1
        except Exception as exc:  # a disk that filled or a directory it may not write, wherever it happened
            return _storage_fault(args, exc)


def _storage_fault(args, exc: BaseException) -> int:
    """One error line for a storage fault (clv/storage_faults.py); any other exception goes on up."""
    from clv import config, storage_faults

    message = storage_faults.describe(exc, config.project_home())
    if message is None or args.debug:
        raise exc
    print(f"clv {args.command}: error: {message}", file=sys.stderr)
    return 1

if __name__ == "__main__":
    sys.exit(main())
