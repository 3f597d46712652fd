"""Shadow run: score the latest scoring population with champion and challenger side by side."""

from __future__ import annotations

import time

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.exclusive import exclusive_warehouse
from clv import config
from clv.settings import load_settings
from clv.warehouse.engines import open_warehouse
from models_ml import registry
from models_ml.shadow import compare_shadow

RUNS_TABLE = "shadow_runs"
SCORES_TABLE = "shadow_scores"


def _timed_predictions(champion, challenger, frame: pd.DataFrame, repeats: int = 3):
    """Both models' predictions and scoring times, each time the fastest of `repeats` runs taken in turn:
    a pause of the machine (another process, a garbage collection) during one run, which on a small shop
    is longer than the scoring itself, does not decide the runtime gate."""
    best = {"champion": float("inf"), "challenger": float("inf")}
    predictions = {}
    for _ in range(repeats):
        for name, model in (("champion", champion), ("challenger", challenger)):
            start = time.perf_counter()
            predictions[name] = model.predict(frame)
            best[name] = min(best[name], time.perf_counter() - start)
    return predictions["champion"], predictions["challenger"], best["champion"], best["challenger"]


@flow(name="shadow-run", log_prints=True)
def shadow_flow(warehouse: str | None = None, model_name: str = config.MODEL_NAME,
                max_mean_shift: float = 0.15, max_runtime_ratio: float = 3.0, settings_file: str | None = None,
                target: str | None = None, settings_variable: str | None = None) -> dict:
    """Champion vs challenger on the customers of the latest scoring cutoff; results in `shadow_runs`
    (one row per run), `shadow_scores` (per customer, latest run) and a Prefect artifact. The warehouse
    comes from the parameters, else the settings file, else the default (any engine).

    Args:
        warehouse: DuckDB warehouse file (target duckdb); empty: the settings file's, else the default.
        model_name: Registered model whose champion and challenger are compared.
        max_mean_shift: Largest relative change of the mean prediction that passes (0.15: 15%).
        max_runtime_ratio: Largest challenger / champion scoring time that passes.
        settings_file: The team's settings file (clv-settings.yml).
        target: Warehouse engine: duckdb, postgres or redshift.
        settings_variable: Prefect Variable whose settings win over the file's (deployments: clv_settings; `clv settings push` fills it, the UI edits it).
    """
    settings = load_settings(settings_file, settings_variable, warehouse=warehouse, target=target)
    store = open_warehouse(settings.target, settings.warehouse)
    warehouse = str(store.path) if store.path else None
    with exclusive_warehouse(store.target, warehouse, "shadow-run"):
        config.use_project_tracking_store()
        champion_version = registry.champion_version(model_name)
        if champion_version is None or registry.champion_version(model_name, "challenger") is None:
            reason = (f"{model_name} has no challenger: the latest retraining did not pass the promotion gates"
                      if champion_version else f"{model_name} has no champion yet")
            get_run_logger().info("shadow run skipped: %s", reason)
            return {"skipped": True, "reason": reason, "passed": None, "champion_version": champion_version}
        champion, champion_version, _ = registry.load_model_by_alias(model_name, config.CHAMPION_ALIAS)
        challenger, challenger_version, _ = registry.load_model_by_alias(model_name, "challenger")
        cutoff = store.read("select max(cutoff_date) as cutoff from clv_scores")["cutoff"].iloc[0]
        if pd.isna(cutoff):
            raise LookupError("clv_scores is empty: run `clv run` before a shadow run")
        cutoff = pd.Timestamp(cutoff).date()
        features = store.read("select * from customer_features where cutoff_date = ? order by customer_id", [cutoff])
        champion_predictions, challenger_predictions, champion_seconds, challenger_seconds = _timed_predictions(
            champion, challenger, features)
        result = compare_shadow(champion_predictions, challenger_predictions, champion_seconds, challenger_seconds,
                                max_mean_shift, max_runtime_ratio)
        result.update({"model_name": model_name, "champion_version": champion_version,
                       "challenger_version": challenger_version, "cutoff": str(cutoff)})
        run_row = pd.DataFrame([{**result, "run_at": pd.Timestamp.now(tz="UTC").tz_localize(None)}])
        per_customer = pd.DataFrame({"customer_id": features["customer_id"], "cutoff_date": features["cutoff_date"],
                                     "champion_prediction": champion_predictions,
                                     "challenger_prediction": challenger_predictions})
        store.replace_table(SCORES_TABLE, per_customer)  # the latest run's customers, then its record
        store.append(RUNS_TABLE, run_row)
        create_markdown_artifact(
            key="clv-shadow-run",
            markdown=(f"# Shadow run: {'pass' if result['passed'] else 'FAIL'}\n\n"
                      f"Champion v{champion_version} vs challenger v{challenger_version} on {result['customers']:,} "
                      f"customers (cutoff {cutoff}).\n\n- mean prediction {result['mean_champion']:,.2f} -> "
                      f"{result['mean_challenger']:,.2f} (shift {result['mean_shift']:.1%}, limit {max_mean_shift:.0%})\n"
                      f"- rank correlation {result['spearman']:.3f}\n- scoring time {champion_seconds:.2f} s -> "
                      f"{challenger_seconds:.2f} s (ratio {result['runtime_ratio']:.2f}, limit {max_runtime_ratio})\n"),
            description="Champion vs challenger",
        )
        return result
