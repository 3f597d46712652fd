"""The deployments and automations of `prefect.yaml`, as a team runs them: a real Prefect server, `prefect
deploy --all` from a project folder holding the team's `clv-settings.yml`, and a process worker. A synthetic
shop's exports grow week by week; each week the test starts the `weekly` deployment, and the automations do
the rest. A stationary week: `monitor` runs and nothing retrains. A week whose purchase rate doubles:
`monitor` emits clv.drift.detected -> `retrain` (on the shop's own data, with the event as its reason)
registers a challenger -> `shadow`; the same week run again retrains nothing new and runs no shadow.
Nothing here lands the bundled demo data."""

from __future__ import annotations

import http.server
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pytest

from clv.synth import SynthConfig, write_synthetic

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START, DAYS = date(2022, 1, 1), 1460
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class WebhookReceiver:
    """A local HTTP server standing in for the team's chat webhook: it keeps every JSON body posted."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/clv"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class LocalPrefect:
    """A Prefect server, the project's deployments and a process worker, each a real process."""

    def __init__(self, root: Path):
        self.root, self.project = root, root / "project"
        self.project.mkdir()
        shutil.copy(REPO / "prefect.yaml", self.project / "prefect.yaml")
        (self.project / "flows").symlink_to(REPO / "flows")  # the deployments' entrypoints
        port = _free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        self.env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), "PREFECT_API_URL": self.api,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                    "PREFECT_WORKER_QUERY_SECONDS": "2", "CLV_HOME": str(root / "clv-home"),
                    "PWD": str(self.project)}  # prefect.yaml's pull step takes the folder from $PWD
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.processes: list[subprocess.Popen] = []
        self._start("server", ["server", "start", "--host", "127.0.0.1", "--port", str(port)])
        self._wait_healthy()

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "w")
        self.processes.append(subprocess.Popen([str(BIN / "prefect"), *args], cwd=self.project, env=self.env,
                                               stdout=log, stderr=subprocess.STDOUT))

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(f"the Prefect server did not start in {timeout:.0f} s:\n{_tail(self.root / 'server.log')}")

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=self.project, env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def deploy_and_start_worker(self) -> None:
        self.cli("work-pool", "create", "clv-process", "--type", "process")
        self.cli("deploy", "--all")
        self._start("worker", ["worker", "start", "--pool", "clv-process"])

    def api_post(self, path: str, body: dict) -> dict | list:
        """POST to the server's API; a busy server's 429/502/503 is retried, as Prefect's own client does."""
        for attempt in range(5):
            response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
            if response.status_code not in (429, 502, 503):
                break
            time.sleep(2 ** attempt)
        response.raise_for_status()
        return response.json()

    def deployment_id(self, flow: str, name: str) -> str:
        response = httpx.get(f"{self.api}/deployments/name/{flow}/{name}", timeout=30)
        response.raise_for_status()
        return response.json()["id"]

    def runs_of(self, deployment: str) -> list[dict]:
        """Flow runs of a deployment (by deployment name), oldest first."""
        return self.api_post("/flow_runs/filter", {
            "deployments": {"name": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC"})

    def wait_for_run(self, deployment: str, count: int, timeout: float = 900, expect: str = "COMPLETED") -> dict:
        """The `count`-th run of a deployment, once it has reached a final state (which must be `expect`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs_of(deployment)
            if len(runs) >= count and runs[count - 1]["state"]["type"] in TERMINAL:
                run = runs[count - 1]
                assert run["state"]["type"] == expect, (
                    f"{deployment} run {run['name']}: {run['state']['type']} {run['state'].get('message')}\n"
                    f"worker log:\n{_tail(self.root / 'worker.log', 120)}")
                return run
            time.sleep(2)
        raise AssertionError(f"no {count}th {deployment} run finished in {timeout:.0f} s (runs: "
                             f"{[(r['name'], r['state']['type']) for r in self.runs_of(deployment)]})\n"
                             f"worker log:\n{_tail(self.root / 'worker.log', 120)}")

    def wait_until_quiet(self, timeout: float = 900, settle: float = 15) -> list[dict]:
        """Every flow run, once all have reached a final state and no automation has started another for
        `settle` seconds: the shop at rest, so nothing else holds the warehouse file."""
        def soon() -> str:
            return (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()

        deadline, quiet_since, seen = time.monotonic() + timeout, None, None
        while time.monotonic() < deadline:
            runs = self.api_post("/flow_runs/filter", {  # the weekly schedule's future runs aside
                "sort": "EXPECTED_START_TIME_ASC", "flow_runs": {"expected_start_time": {"before_": soon()}}})
            now = [(run["id"], run["state"]["type"]) for run in runs]
            if now != seen or not all(state in TERMINAL for _, state in now):
                seen, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return runs
            time.sleep(2)
        raise AssertionError(f"flow runs still going after {timeout:.0f} s: "
                             f"{[(r['name'], r['state']['type']) for r in runs if r['state']['type'] not in TERMINAL]}")

    def run_weekly(self, count: int) -> dict:
        self.api_post(f"/deployments/{self.deployment_id('weekly-clv', 'weekly')}/create_flow_run", {})
        return self.wait_for_run("weekly", count)

    def stop(self) -> None:
        for process in reversed(self.processes):  # the worker before the server
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def local_prefect(tmp_path_factory):
    if shutil.which("prefect", path=str(BIN)) is None:
        pytest.skip("the prefect CLI is not installed beside this Python")
    prefect = LocalPrefect(tmp_path_factory.mktemp("deployed"))
    try:
        prefect.deploy_and_start_worker()
        yield prefect
    finally:
        prefect.stop()


def export_week(shop: dict, folder: Path, week: int) -> None:
    """The team's weekly export: every order and event up to the week's last day (the same files, grown)."""
    cutoff = START + timedelta(days=DAYS - 1 + 7 * week)
    for entity, column in (("orders", "order_ts"), ("events", "event_ts")):
        duckdb.sql(f"copy (select * from read_parquet('{shop[entity]}') where cast({column} as date) <= '{cutoff}') "
                   f"to '{folder / entity}.parquet' (format parquet)")


def last_drift_status(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select status from drift_history order by cutoff_date").fetchall()[-1][0]


@pytest.fixture(scope="module")
def team_weeks(local_prefect, tmp_path_factory):
    """A team's weeks on the deployments, in order, with what each step left behind for the tests below:
    notifications set up; weeks 0 and 1 like the weeks before (the champion is trained in week 0); week 2,
    whose purchase rate doubles; a weekly run started while another holder has the warehouse slot; a run
    whose export is missing."""
    shift_week = 2  # the purchase rate doubles from the first day of week 2
    root = tmp_path_factory.mktemp("team")
    shop = write_synthetic(SynthConfig(customers=6000, seed=21, start=START, days=DAYS + 21,
                                       shift_day=DAYS + 7 * (shift_week - 1), shift_rate=2.0), root / "shop")
    exports = local_prefect.project / "exports"
    exports.mkdir()
    shutil.copy(shop["customers"], exports / "customers.parquet")
    warehouse = root / "team-warehouse" / "clv.duckdb"
    settings = local_prefect.project / "clv-settings.yml"
    settings.write_text("orders: exports/orders.parquet\ncustomers: exports/customers.parquet\n"
                        f"events: exports/events.parquet\ntarget: duckdb\nwarehouse: {warehouse}\n")
    seen = {"warehouse": warehouse}

    # the operator connects failure notifications to the team's webhook (here a local receiver)
    receiver = WebhookReceiver()
    seen["notifications_setup"] = subprocess.run(
        [str(BIN / "clv"), "notifications", "setup", "--webhook-url", receiver.url],
        env=local_prefect.env, capture_output=True, text=True, timeout=120)

    # weeks 0 and 1: monitor runs after each
    for week in (0, 1):
        export_week(shop, exports, week)
        local_prefect.run_weekly(week + 1)
        local_prefect.wait_for_run("monitor", week + 1)
    time.sleep(10)  # an automation fires within seconds of the event it reacts to
    seen["retrains_after_quiet_weeks"] = local_prefect.runs_of("retrain")
    seen["drift_after_quiet_weeks"] = last_drift_status(warehouse)

    # week 2: the purchase rate doubles
    export_week(shop, exports, shift_week)
    local_prefect.run_weekly(3)
    local_prefect.wait_for_run("monitor", 3)
    seen["retrain"] = local_prefect.wait_for_run("retrain", 1)
    seen["shadow"] = local_prefect.wait_for_run("shadow", 1)
    seen["retrains_after_drift"] = local_prefect.runs_of("retrain")
    seen["drift_after_shift"] = last_drift_status(warehouse)

    # a weekly run while another holder has the shared warehouse slot
    seen["limits"] = {limit["name"]: limit for limit in local_prefect.api_post("/v2/concurrency_limits/filter", {})}
    slot = {"names": ["clv-warehouse-writes"], "slots": 1}
    local_prefect.api_post("/v2/concurrency_limits/increment", {**slot, "mode": "concurrency"})
    local_prefect.api_post(f"/deployments/{local_prefect.deployment_id('weekly-clv', 'weekly')}/create_flow_run", {})
    time.sleep(20)
    seen["waiting_behind_the_holder"] = local_prefect.runs_of("weekly")[3]
    local_prefect.api_post("/v2/concurrency_limits/decrement", slot)
    seen["after_the_slot_is_given_back"] = local_prefect.wait_for_run("weekly", 4)
    local_prefect.wait_until_quiet()  # the automations that run 4 starts finish before the settings change

    # every run so far completed; then a run whose export (named by the settings) is missing
    seen["messages_while_runs_complete"] = list(receiver.received)
    settings.write_text(f"orders: exports/missing-orders.parquet\ntarget: duckdb\nwarehouse: {warehouse}\n")
    local_prefect.api_post(f"/deployments/{local_prefect.deployment_id('weekly-clv', 'weekly')}/create_flow_run", {})
    seen["failed"] = local_prefect.wait_for_run("weekly", 5, expect="FAILED")
    deadline = time.monotonic() + 60
    while len(receiver.received) <= len(seen["messages_while_runs_complete"]) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # and only one
    receiver.stop()
    seen["messages"] = receiver.received[len(seen["messages_while_runs_complete"]):]
    seen["runs_at_rest"] = local_prefect.wait_until_quiet()  # the tests below read the warehouse file
    return seen


def test_the_operator_sees_every_automation_described_and_enabled(local_prefect, team_weeks):
    setup = team_weeks["notifications_setup"]
    assert setup.returncode == 0 and "notify when a CLV run fails" in setup.stdout, setup.stderr[-2000:]
    automations = {a["name"]: a for a in local_prefect.api_post("/automations/filter", {})}
    assert set(automations) == {"monitor after each weekly run", "retrain when drift is detected",
                                "retrain when performance degrades", "shadow run for each new challenger",
                                "notify when a CLV run fails"}
    assert all(a["description"] and a["enabled"] for a in automations.values())  # what the Prefect UI shows


def test_the_weekly_schedule_says_its_time_zone(local_prefect, team_weeks):
    weekly = httpx.get(f"{local_prefect.api}/deployments/name/weekly-clv/weekly", timeout=30).json()
    zones = {schedule["schedule"]["timezone"] for schedule in weekly["schedules"]}
    assert zones and all(zone in weekly["description"] for zone in zones)  # the UI lists schedules without it


def test_weeks_like_the_ones_before_monitor_and_retrain_nothing(team_weeks):
    assert team_weeks["retrains_after_quiet_weeks"] == []
    assert team_weeks["drift_after_quiet_weeks"] == "ok"


def test_drift_retrains_once_on_the_event_then_runs_a_shadow(team_weeks):
    assert team_weeks["drift_after_shift"] == "alert"
    assert team_weeks["retrain"]["parameters"] == {"settings_file": "clv-settings.yml", "settings_variable": "clv_settings",
                                                   "reason": "clv.drift.detected"}
    assert team_weeks["shadow"]["state"]["type"] == "COMPLETED"
    assert len(team_weeks["retrains_after_drift"]) == 1


def test_each_week_is_scored_once_from_the_shops_own_data(team_weeks):
    with duckdb.connect(str(team_weeks["warehouse"]), read_only=True) as con:
        weeks, duplicates = con.execute(
            "select count(distinct cutoff_date), count(*) - count(distinct (cutoff_date, customer_id)) "
            "from clv_scores_history").fetchall()[0]
        landed = con.execute("select count(distinct customer_id) from raw.orders").fetchall()[0][0]
    assert (weeks, duplicates) == (3, 0)
    assert landed <= 6000  # the shop's own customers only: no demo data landed


def test_a_weekly_run_waits_while_another_holds_the_warehouse(team_weeks):
    """Every deployment that writes the warehouse queues on one shared slot: while another holder has it, a
    weekly run waits; it completes once the slot is given back."""
    limit = team_weeks["limits"]["clv-warehouse-writes"]
    assert (limit["limit"], limit["active_slots"]) == (1, 0)
    assert team_weeks["waiting_behind_the_holder"]["state"]["type"] not in TERMINAL
    assert team_weeks["after_the_slot_is_given_back"]["state"]["type"] == "COMPLETED"


def test_a_failed_run_posts_one_message_and_completed_runs_none(team_weeks):
    assert team_weeks["messages_while_runs_complete"] == []
    failed = team_weeks["failed"]
    assert len(team_weeks["messages"]) == 1, team_weeks["messages"]
    message = team_weeks["messages"][0]
    assert message["subject"] == f"CLV run failed: {failed['name']}"
    assert message["body"].startswith(f"CLV weekly run {failed['name']} ended Failed: ")
    assert "missing-orders.parquet" in message["body"] and f"/runs/flow-run/{failed['id']}" in message["body"]
    assert message["text"] == message["subject"] + "\n" + message["body"]


@pytest.fixture(scope="module")
def registry(local_prefect, team_weeks):
    """The MLflow registry the deployed runs wrote (not the one earlier tests set)."""
    from mlflow import MlflowClient

    from clv import config

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLV_HOME", local_prefect.env["CLV_HOME"])
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        store = config.default_tracking_uri()
    return MlflowClient(tracking_uri=store, registry_uri=store)


def test_the_registry_records_each_versions_gate_outcome_and_trigger(registry, team_weeks):
    versions = {str(v.version): v for v in registry.search_model_versions("name = 'clv_xgboost'")}
    assert sorted(versions) == ["1", "2"]
    assert versions["1"].tags["gate_outcome"] == "champion"
    assert versions["2"].tags["gate_outcome"] == "challenger"  # what set off the shadow run
    assert registry.get_run(versions["2"].run_id).data.params["trigger"] == "clv.drift.detected"


def test_mlflow_names_runs_and_describes_versions_for_its_ui(registry, team_weeks):
    [first] = [v for v in registry.search_model_versions("name = 'clv_xgboost'") if str(v.version) == "1"]
    run = registry.get_run(first.run_id)
    tags = run.data.tags
    spec = json.loads(tags["model_spec"])  # type, a hash of the configuration, data cutoff, data hash
    assert run.info.run_name == (f"{spec['type']}-{hashlib.sha1(tags['model_spec'].encode()).hexdigest()[:6]}-"
                                 f"{tags['data_through']}-{tags['training_data_hash'][:8]}")
    assert "trained on" in tags["mlflow.note.content"]  # the run's description
    assert "gate outcome: champion (" in first.description
    assert registry.get_registered_model("clv_xgboost").description.startswith("Predicted customer spend")


def test_every_run_the_automations_started_completed(local_prefect, team_weeks):
    """At rest, every run completed but the one whose export is missing. The re-run of week 2 (run 4) set
    off its monitor and, on the same drift, a retrain that found version 2 already trained on these data:
    no new version (see the registry test), so no second shadow run."""
    runs = team_weeks["runs_at_rest"]
    failed = [run["name"] for run in runs if run["state"]["type"] != "COMPLETED"]
    assert failed == [team_weeks["failed"]["name"]], [(r["name"], r["state"]["type"]) for r in runs]
    assert len(local_prefect.runs_of("monitor")) == 4  # one after each completed weekly run
    assert len(local_prefect.runs_of("retrain")) == 2  # on each drift alert: week 2 and its re-run
    assert len(local_prefect.runs_of("shadow")) == 1  # the re-run's retraining registered nothing new
