"""The bad-input matrix through the command a user runs (`clv run` in a subprocess, with its temporary
Prefect server): exit code, exactly one error line naming the cause, no traceback, nothing personal in
the logs or the Prefect database; and a killed run leaves no Prefect server behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.ingest.test_bad_inputs import good_orders, write_customers_with_a_malformed_line

CLV = str(Path(sys.executable).with_name("clv"))


def clv(args: list[str], home: Path, **env) -> subprocess.CompletedProcess:
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "CLV_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), **env}
    for inherited in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):  # other tests set them in this process
        environment.pop(inherited, None)
    return subprocess.run([CLV, *args], env=environment, capture_output=True, text=True, timeout=300)


def assert_one_error_line(done: subprocess.CompletedProcess, exit_code: int, *phrases: str,
                          command: str = "run") -> str:
    output = done.stdout + done.stderr
    assert done.returncode == exit_code, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if " ERROR " in line or line.startswith(("clv ", "usage:"))]
    errors = [line for line in errors if not line.startswith("usage:")]  # argparse prints its usage first
    assert len(errors) == 1 and errors[0].startswith(f"clv {command}: error: "), errors
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)
    return path


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], int, tuple[str, ...]]]:
    """case -> (clv run arguments, exit code, phrases of the error line)."""
    absurd = good_orders(seed=30, lines=1000)
    absurd.loc[:19, "quantity"] = 1e12
    comma = good_orders(seed=31).astype({"unit_price": object})
    comma.loc[:19, "unit_price"] = "12,5"
    floats = good_orders(seed=32).assign(customer_id=[i % 50 + 0.5 for i in range(400)])
    latin = tmp / "latin.csv"
    latin.write_bytes(good_orders(seed=33).assign(product_id="Crème").to_csv(index=False).encode("latin-1"))
    (tmp / "folder.csv").mkdir()
    sources = tmp / "sources.yml"
    sources.write_text(f"sources:\n  - name: orders\n    kind: files\n    entity: orders\n    path: {latin}\n"
                       "    encodng: latin-1\n")
    missing = write(good_orders(seed=34).drop(columns="unit_price"), tmp / "no-price.csv")
    return {
        "missing column": (["--orders", str(missing)], 1, ("missing required column(s) unit_price",)),
        "absurd quantities": (["--orders", str(write(absurd, tmp / "absurd.parquet"))], 1,
                              ("column quantity", "20 of 1,000 rows", "implausible")),
        "decimal comma": (["--orders", str(write(comma, tmp / "comma.csv"))], 1, ("sample '12,5'", "decimal comma")),
        "non-integral ids": (["--orders", str(write(floats, tmp / "floats.parquet"))], 1,
                             ("customer_id is a number with decimals",)),
        "latin-1 text": (["--orders", str(latin)], 1, ("not valid UTF-8", "encoding: latin-1")),
        "a directory": (["--orders", str(tmp / "folder.csv")], 2, ("is a directory",)),
        "brackets, no such file": (["--orders", str(tmp / "orders[2024].csv")], 2, ("file not found",)),
        "typo in the sources file": (["--sources", str(sources)], 1, ("line 6", "unknown setting(s) encodng")),
        "a cutoff in the future": (["--orders", str(write(good_orders(seed=38), tmp / "future.csv")),
                                    "--cutoff", "2999-01-01"], 2, ("2999-01-01 is in the future",)),
    }


def test_bad_inputs_through_the_cli_answer_with_one_line(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    write(good_orders(seed=35), tmp_path / "orders2.csv")  # what a bracket glob would have matched
    cases = bad_inputs(tmp_path)

    def run(case: str) -> subprocess.CompletedProcess:
        home = tmp_path / case.replace(" ", "-")
        return clv(["run", *cases[case][0], "--warehouse", str(home / "w.duckdb")], home)

    with ThreadPoolExecutor(max_workers=3) as pool:  # independent runs, each with its own home
        outcomes = dict(zip(cases, pool.map(run, cases)))
    for case, (_, code, phrases) in cases.items():
        assert_one_error_line(outcomes[case], code, *phrases)
        warehouse = tmp_path / case.replace(" ", "-") / "w.duckdb"
        if warehouse.exists():  # refused inputs land nothing
            with duckdb.connect(str(warehouse), read_only=True) as con:
                assert con.execute("select count(*) from raw.orders").fetchone() == (0,), case


def test_a_cutoff_weeks_after_the_last_order_is_refused_before_the_build(tmp_path):
    """The orders end on 2024-04-11: a cutoff of 2024-06-30 would score every customer as silent for 80
    days the data do not cover. Refused, naming both dates, after landing (the orders are good) and before
    dbt builds anything; a cutoff inside the data is not refused (test_features, test_incremental_snapshots)."""
    orders = write(good_orders(seed=39), tmp_path / "orders.csv")
    home = tmp_path / "home"
    done = clv(["run", "--orders", str(orders), "--cutoff", "2024-06-30", "--warehouse", str(home / "w.duckdb")], home)
    assert_one_error_line(done, 1, "scoring cutoff 2024-06-30 is 80 days after the last landed order (2024-04-11)",
                          "give a cutoff up to 2024-04-18")
    with duckdb.connect(str(home / "w.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.orders").fetchone() == (400,)  # kept for the next run
        built = con.execute("select count(*) from information_schema.tables where table_name = 'customer_features'")
        assert built.fetchone() == (0,)


def test_the_demo_data_land_only_when_asked_for_and_never_beside_a_shops_inputs(tmp_path):
    """`clv run` without inputs used to land the bundled Online Retail II orders into whatever warehouse it
    opened: now it stops at once, as does --demo beside a shop's inputs (`--demo` alone: test_defaults)."""
    orders = write(good_orders(seed=40), tmp_path / "orders.csv")
    home = tmp_path / "home"
    started = time.monotonic()
    nothing = clv(["run", "--warehouse", str(home / "w.duckdb")], home)
    assert_one_error_line(nothing, 1, "no inputs: give --orders, --sources or --settings", "only with --demo")
    both = clv(["run", "--demo", "--orders", str(orders), "--warehouse", str(home / "w.duckdb")], home)
    assert_one_error_line(both, 1, "--demo runs on the bundled Online Retail II orders only")
    assert time.monotonic() - started < 30  # before Prefect's server starts
    assert not (home / "w.duckdb").exists()


def test_a_busy_warehouse_and_a_corrupt_store_answer_with_one_line(tmp_path):
    orders = write(good_orders(seed=36), tmp_path / "orders.csv")
    warehouse = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom clv.warehouse.run_lock import warehouse_run_lock\n"
                               "with warehouse_run_lock('duckdb', sys.argv[1], 'weekly-clv'):\n"
                               "    print('held', flush=True); time.sleep(60)", str(warehouse)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        done = clv(["run", "--orders", str(orders), "--warehouse", str(warehouse)], tmp_path / "home")
        assert_one_error_line(done, 1, f"is in use by weekly-clv (pid {holder.pid})")
        assert time.monotonic() - started < 15  # at once: before the Prefect server starts
        promote = clv(["promote", "1", "--reason", "now", "--warehouse", str(warehouse)], tmp_path / "home")
        assert_one_error_line(promote, 1, f"is in use by weekly-clv (pid {holder.pid})", command="promote")
        debug = clv(["--debug", "run", "--orders", str(orders), "--warehouse", str(warehouse)], tmp_path / "home")
        assert debug.returncode == 1 and "Traceback" in debug.stderr and "WarehouseBusyError" in debug.stderr
    finally:
        holder.kill()
        holder.wait()
    home = tmp_path / "corrupt"
    (home / "mlflow").mkdir(parents=True)
    (home / "mlflow" / "mlflow.db").write_bytes(b"not a database" * 100)
    done = clv(["run", "--orders", str(orders), "--warehouse", str(home / "w.duckdb")], home)
    assert_one_error_line(done, 1, "cannot be read as an MLflow store")


def test_a_malformed_line_with_an_email_reaches_neither_logs_nor_the_prefect_database(tmp_path):
    customers = tmp_path / "customers.csv"
    write_customers_with_a_malformed_line(customers)
    orders = write(good_orders(seed=37), tmp_path / "orders.csv")
    home = tmp_path / "home"
    done = clv(["run", "--orders", str(orders), "--customers", str(customers),
                "--warehouse", str(home / "w.duckdb")], home)
    assert_one_error_line(done, 1, "a line near line 25,001 has 3 fields where the header has 2")
    assert "person@example.com" not in done.stdout + done.stderr
    stored = [p for p in (home / "prefect").rglob("*") if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in stored), stored  # the run's Prefect database exists
    leaked = [str(p) for p in home.rglob("*") if p.is_file() and b"person@example.com" in p.read_bytes()]
    assert leaked == [], leaked


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killing_a_run_ends_its_temporary_prefect_server(tmp_path):
    home = tmp_path / "home"
    environment = {**os.environ, "CLV_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    environment.pop("PREFECT_API_URL", None)
    environment.pop("MLFLOW_TRACKING_URI", None)
    orders = write(good_orders(seed=38), tmp_path / "orders.csv")
    run = subprocess.Popen([CLV, "run", "--orders", str(orders), "--warehouse", str(home / "w.duckdb")],
                           env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server, deadline = None, time.monotonic() + 120
    while server is None and time.monotonic() < deadline and run.poll() is None:
        server = next((c for c in _children(run.pid)
                       if b"uvicorn" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
        time.sleep(0.1)
    assert server is not None, "the run's temporary Prefect server was not seen"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{server}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = Path(f"/proc/{server}").exists() and b"uvicorn" in Path(f"/proc/{server}/cmdline").read_bytes()
    if alive:
        os.kill(server, signal.SIGKILL)
    assert not alive, "the temporary Prefect server outlived its killed run"


def test_a_file_error_answers_before_prefect_starts(tmp_path):
    missing = write(good_orders(seed=39).drop(columns="unit_price"), tmp_path / "no-price.csv")
    started = time.monotonic()
    done = clv(["run", "--orders", str(missing), "--warehouse", str(tmp_path / "w.duckdb")], tmp_path / "home")
    seconds = time.monotonic() - started
    assert_one_error_line(done, 1, "missing required column(s) unit_price")
    assert "Starting temporary server" not in done.stderr and not (tmp_path / "w.duckdb").exists()
    assert seconds < 10, seconds  # about 2 s here; no Prefect server, no dbt


@pytest.mark.parametrize("command", ["monitor", "shadow", "retrain"])
def test_a_missing_warehouse_answers_before_prefect_starts(tmp_path, command):
    done = clv([command, "--warehouse", str(tmp_path / "none.duckdb")], tmp_path / "home")
    assert_one_error_line(done, 1, "none.duckdb does not exist: run `clv run` first", command=command)
    assert "Starting temporary server" not in done.stderr and not (tmp_path / "none.duckdb").exists()


def test_version_and_help_on_every_option():
    import argparse

    from clv.cli import build_parser

    done = subprocess.run([CLV, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().startswith("clv 0.1")
    undocumented = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.help is None:
                undocumented.append((" ".join(path), action.option_strings or action.dest))

    walk(build_parser(), ["clv"])
    assert undocumented == []
    assert build_parser().parse_args(["monitor"]).json is None  # the report is printed; JSON on request


def test_dbt_reports_one_line_per_node_with_the_task_name_and_no_colour_codes(tmp_path):
    orders = write(good_orders(seed=41), tmp_path / "orders.csv")
    done = clv(["features", "--orders", str(orders), "--horizon-days", "30",
                "--warehouse", str(tmp_path / "w.duckdb")], tmp_path / "home")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "\x1b[" not in output  # not a terminal: no ANSI colour codes
    assert any("[build_features-" in line and "dbt model customer_features: success" in line
               for line in output.splitlines())
    assert "Concurrency: " not in output  # dbt's own chatter only with --verbose
    # progress, as plain lines (stderr is not a terminal): each step's start and end, with what it did
    steps = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert re.fullmatch(r"progress: step 1: land inputs started \(run 0:\d\d\)", steps[0]), steps
    assert steps[1].startswith("progress: step 1: land inputs done in ") and " new rows, 0 new in quarantine" in steps[1]
    assert steps[2].startswith("progress: step 2: build features (dbt) started")
    assert steps[3].startswith("progress: step 2: build features (dbt) done in ") and "scoring cutoff" in steps[3]
    bad = clv(["run", "--horizon-days", "-5"], tmp_path / "home")
    assert bad.returncode == 2 and bad.stderr.strip() == "clv run: error: --horizon-days must be at least 1 (got -5)"


@pytest.mark.parametrize("setting, phrase", [
    ("high_tier_share: lots", "high_tier_share must be a number in [0, 1], got 'lots'"),
    ("horizon_days: 365.5", "horizon_days must be a whole number in [1, 3650], got 365.5"),
    ("margin_rate: 40", "margin_rate must be a number in (0, 1], got 40"),
])
def test_a_mistyped_setting_answers_with_its_name_before_prefect_starts(tmp_path, setting, phrase):
    orders = write(good_orders(seed=39), tmp_path / "orders.csv")
    settings = tmp_path / "clv-settings.yml"
    settings.write_text(f"orders: {orders}\nwarehouse: {tmp_path / 'w.duckdb'}\n{setting}\n")
    done = clv(["run", "--settings", str(settings)], tmp_path / "home")
    assert_one_error_line(done, 1, phrase, str(settings))
    assert "Starting temporary server" not in done.stderr and not (tmp_path / "w.duckdb").exists()


def test_settings_of_the_right_types_are_accepted(tmp_path):
    from clv.settings import load_settings

    path = tmp_path / "clv-settings.yml"
    path.write_text("high_tier_share: 0.1\nmedium_tier_share: 0.4\nhorizon_days: 180\nmax_prediction_multiple: 20\n"
                    "order_value_cap_percentile: null\nmargin_rate: 0.3\ngate_config: {gini_floor: 0.2}\n")
    settings = load_settings(path)
    assert (settings.high_tier_share, settings.horizon_days, settings.gate_config) == (0.1, 180, {"gini_floor": 0.2})


def test_the_example_settings_copied_as_they_are_say_what_to_fill_in(tmp_path):
    """clv-settings.example.yml copied unedited: one line saying the sources file is missing and how to make
    it, before Prefect starts, and nothing created outside CLV_HOME (the example names no system path)."""
    settings = tmp_path / "team" / "clv-settings.yml"
    settings.parent.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "clv-settings.example.yml", settings)
    done = clv(["run", "--settings", str(settings)], tmp_path / "home")
    assert_one_error_line(done, 1, "sources.yml: the sources file does not exist: copy sources.example.yml")
    assert "Starting temporary server" not in done.stderr
    assert sorted(p.name for p in settings.parent.iterdir()) == ["clv-settings.yml"]
    assert "/var/lib" not in settings.read_text().split("# warehouse:")[0]


def test_a_bi_tool_holding_the_warehouse_file_is_named_before_the_run_starts(tmp_path):
    """The README's own reader snippet, left open on the warehouse file: `clv run` stops at once, naming the
    program and the serving copy BI tools should read instead, not after minutes with an IOException."""
    orders = write(good_orders(seed=36), tmp_path / "orders.csv")
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).execute("create table clv_scores as select 1 as customers").close()
    reader = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time\n"
                               "con = duckdb.connect(sys.argv[1], read_only=True)\nprint('open', flush=True)\n"
                               "time.sleep(60)", str(warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        done = clv(["run", "--orders", str(orders), "--warehouse", str(warehouse)], tmp_path / "home")
        assert_one_error_line(done, 1, "is held open by", f"(pid {reader.pid})", "read w_serving.duckdb")
        assert "Starting temporary server" not in done.stderr
    finally:
        reader.kill()
        reader.wait()
