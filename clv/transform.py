"""Run the dbt project in-process (dbt-core's programmatic runner)."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from pathlib import Path

from clv import training_set_schema
from clv.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR, project_home
from clv.settings import DEFAULTS
from clv.warehouse.embedded import MEMORY_LIMIT_ENV, memory_limit

log = logging.getLogger(__name__)


class DbtBuildError(RuntimeError):
    """dbt reported failing models or tests; the message lists them."""


def dbt_vars(cutoff=None, horizon_days: int = DEFAULTS.horizon_days, training_cutoffs=(), label_horizons=None,
             order_value_cap_percentile: float | None = DEFAULTS.order_value_cap_percentile) -> dict:
    """The dbt project's vars (see dbt_project.yml); a None cutoff means the last date of the order lines
    that count now (the pipeline always passes the plan's cutoff, clv/snapshots.py, so the rule runs once).
    `training_cutoffs` come from the snapshot calendar (clv/snapshots.py)."""
    return {
        "cutoff_date": str(cutoff) if cutoff else None,
        "horizon_days": int(horizon_days),
        "training_cutoffs": [str(c) for c in training_cutoffs],
        "label_horizons": [int(h) for h in label_horizons] if label_horizons else None,
        "order_value_cap_percentile": order_value_cap_percentile,
    }


def run_dbt(command: list[str], warehouse: Path | str | None = None, variables: dict | None = None,
            target: str = "duckdb", check: bool = True):
    """Invoke `dbt <command>` on the project against a target; raise DbtBuildError naming what failed
    (with `check=False`, failed nodes are left to the caller: only a dbt that could not run raises)."""
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    # the dbt profile reads the DuckDB memory limit from the environment: the same default as clv's connections
    os.environ.setdefault(MEMORY_LIMIT_ENV, memory_limit())
    if warehouse is not None:
        os.environ["CLV_WAREHOUSE"] = str(Path(warehouse).resolve())
    state_dir = project_home() / "dbt"
    _refresh_training_set_contract()
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
    # dbt's own console output only with CLV_DBT_VERBOSE=1 (`clv --verbose`), no colour codes outside a
    # terminal; otherwise every node's result is one line in the run's log, and dbt's other warnings and
    # errors are logged once each (not its stack traces: the run's error line says why it stopped; the
    # full dbt log stays in $CLV_HOME/dbt/logs).
    verbose = os.environ.get(DBT_VERBOSE_ENV, "") not in ("", "0", "false")
    args = [*args[:len(command)], "--log-level", "info" if verbose else "none",
            "--use-colors" if sys.stdout.isatty() else "--no-use-colors", *args[len(command):]]
    logger = _run_logger()
    logger.info("dbt %s", " ".join(command))
    callbacks = [_node_summary(logger, _run_event_emitter())] + ([] if verbose else [_warnings_and_errors(logger)])
    try:
        result = dbtRunner(callbacks=callbacks).invoke(args)
    except BaseException:
        _release_duckdb_file(quietly=True)
        raise
    stopped = _stop_signal_in(result.exception)
    _release_duckdb_file(quietly=stopped is not None)
    if stopped is not None:  # dbt reports a SIGTERM or Ctrl-C as whatever failed while it stopped
        raise stopped
    if result.exception is not None:
        raise DbtBuildError(f"dbt {' '.join(command)} could not run: {result.exception}")
    if result.success or not check:
        return result
    failures = [
        f"{r.node.resource_type} {r.node.name}: {r.status} ({_failure_message(r.message)})"
        for r in (result.result.results if result.result else [])
        if str(r.status) in {"error", "fail"}
    ]
    raise DbtBuildError(f"dbt {' '.join(command)} failed:\n  " + "\n  ".join(failures or ["unknown failure"]))


DBT_VERBOSE_ENV = "CLV_DBT_VERBOSE"


def _failure_message(message: str | None) -> str:
    """dbt's message, shortened; a broken contract keeps its table rows (column, types, what is wrong)."""
    text = (message or "").strip()
    rows = [line.strip() for line in text.splitlines()
            if line.strip().startswith("|") and "column_name" not in line and "---" not in line]
    if "enforced contract" in text and rows:
        return "enforced contract failed: " + "; ".join(rows)
    if "schemas on this incremental model are out of sync" in text:
        return ("its columns changed since its snapshots were built (a feature added or a type changed): "
                "rebuild them once with `clv run --full-refresh`")
    return text[:300]


def _refresh_training_set_contract() -> None:
    """customer_training_set's contract follows _marts.yml: after a feature's YAML entry is added there, the
    next build rewrites `_training_set.yml` (a generated file to commit with the change) before dbt reads it."""
    marts = DBT_PROJECT_DIR / "models" / "marts"
    if not training_set_schema.stale(marts):
        return
    try:
        training_set_schema.stale(marts, write=True)
    except OSError as exc:
        raise DbtBuildError(f"{marts / '_training_set.yml'} is out of date with _marts.yml and cannot be "
                            f"rewritten here ({exc}): run `python scripts/generate_docs.py` in the checkout") from exc
    log.warning("rewrote %s from _marts.yml (customer_training_set's contract): commit it with the change",
                marts / "_training_set.yml")


def _run_logger():
    """The Prefect run's logger inside a flow or task run (its lines reach the Prefect UI), else ours."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run context
        return log


def _node_summary(logger, emit):
    """A dbt callback logging one line per finished model, test or seed (status and seconds) and emitting it
    as an event (`emit`, or nothing outside a run) as it finishes, from dbt's worker threads."""
    def on_event(event) -> None:
        if event.info.name != "NodeFinished":
            return
        node, outcome = event.data.node_info, event.data.run_result
        level = logging.WARNING if outcome.status in ("error", "fail", "warn") else logging.INFO
        logger.log(level, "dbt %s %s: %s (%.1f s)%s", node.resource_type, node.node_name, outcome.status,
                   outcome.execution_time, f" {outcome.message[:200]}" if level > logging.INFO and outcome.message else "")
        if emit is not None:
            emit(node.resource_type, node.node_name, str(outcome.status), outcome.execution_time, outcome.message)
    return on_event


# dbt events the run reports otherwise: node results (`_node_summary`), the end-of-run failure summary and
# "Encountered an error" (the DbtBuildError), and stack traces (never shown to the user; in dbt's log file).
_REPORTED_ELSEWHERE = ("NodeFinished", "MainStackTrace", "MainEncounteredError", "RunResultError", "RunResultFailure",
                       "RunResultErrorNoMessage", "EndOfRunSummary", "StatsLine", "GenericExceptionOnRun")


def _warnings_and_errors(logger):
    """A dbt callback logging dbt's warnings and errors (deprecations, a test's warn-level message) once
    each as WARNING lines, since dbt's console is silent outside `--verbose`."""
    def on_event(event) -> None:
        name = event.info.name
        if event.info.level not in ("warn", "error") or name in _REPORTED_ELSEWHERE or name.startswith("Log") \
                and name.endswith("Result"):
            return
        logger.warning("dbt: %s", event.info.msg)
    return on_event


def _run_event_emitter():
    """Inside a Prefect run, a function emitting each finished dbt node as an event (`clv.dbt.<type>.<status>`,
    related to the flow and task run, taken here because dbt calls back from threads outside the run's
    context), so the Prefect UI's event feed and automations see it as it happens; None outside a run."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_run, task_run = FlowRunContext.get(), TaskRunContext.get()
    if flow_run is None and task_run is None:
        return None
    from prefect.events import emit_event

    related = []
    if flow_run is not None and flow_run.flow_run is not None:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run.flow_run.id}",
                        "prefect.resource.role": "flow-run", "prefect.resource.name": flow_run.flow_run.name})
    if task_run is not None:
        related.append({"prefect.resource.id": f"prefect.task-run.{task_run.task_run.id}",
                        "prefect.resource.role": "task-run", "prefect.resource.name": task_run.task_run.name})

    def emit(resource_type, name, status, seconds, message) -> None:
        emit_event(event=f"clv.dbt.{resource_type}.{status}",
                   resource={"prefect.resource.id": f"clv.dbt.{resource_type}.{name}", "prefect.resource.name": name},
                   related=related, payload={"seconds": round(float(seconds or 0), 3), "message": (message or "")[:500]})
    return emit


def _stop_signal_in(exc: BaseException | None) -> BaseException | None:
    """The SIGTERM (Prefect's TerminationSignal) or Ctrl-C that stopped dbt, found in the chain of the
    exception dbt returned: dbt catches it and returns the error its cleanup then hit instead (a DuckDB
    "connection is busy"), which would hide why the run ended."""
    from prefect.exceptions import TerminationSignal

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (TerminationSignal, KeyboardInterrupt)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _release_duckdb_file(quietly: bool = False) -> None:
    """Close dbt-duckdb's process-wide DuckDB instance so the warehouse file is free again: DuckDB
    allows one writer per file, and a later read-only connection in this process would conflict.
    `quietly`: while the run is already failing or stopping (dbt's threads may still hold the
    connection), an error here is logged, not raised over the reason the run ends."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        from dbt.adapters.factory import reset_adapters
    except ImportError:  # another adapter
        return
    try:
        reset_adapters()
        DuckDBConnectionManager.close_all_connections()  # drops the instance (dbt-duckdb's own atexit hook)
    except Exception as exc:
        if not quietly:
            raise
        logging.getLogger(__name__).debug("dbt's DuckDB connection not closed while stopping: %s", exc)
    gc.collect()  # and with it the last reference to the database, which closes it
