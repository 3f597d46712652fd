"""The deployments and automations of `prefect.yaml`, as a team runs them: a real Prefect server, `prefect
deploy --all` from a project folder holding the team's `clv-settings.yml`, and a process worker. A synthetic
shop's exports grow week by week; each week the test starts the `weekly` deployment, and the automations do
the rest. A stationary week: `monitor` runs and nothing retrains. A week whose purchase rate doubles:
`monitor` emits clv.drift.detected -> `retrain` (on the shop's own data, with the event as its reason)
-> `shadow`. Nothing here lands the bundled demo data."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from clv.synth import SynthConfig, write_synthetic

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def local_prefect(tmp_path):
    if shutil.which("prefect", path=str(BIN)) is None:
        pytest.skip("the prefect CLI is not installed beside this Python")
    prefect = LocalPrefect(tmp_path)
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


def test_deployed_weekly_monitor_retrain_shadow_chain(local_prefect, tmp_path, monkeypatch):

    shift_week = 2  # the purchase rate doubles from the first day of week 2
    shop = write_synthetic(SynthConfig(customers=6000, seed=21, start=START, days=DAYS + 21,
                                       shift_day=DAYS + 7 * (shift_week - 1), shift_rate=2.0), tmp_path / "shop")
    exports = local_prefect.project / "exports"
    exports.mkdir()
    shutil.copy(shop["customers"], exports / "customers.parquet")
    warehouse = tmp_path / "team-warehouse" / "clv.duckdb"
    (local_prefect.project / "clv-settings.yml").write_text(
        "orders: exports/orders.parquet\ncustomers: exports/customers.parquet\nevents: exports/events.parquet\n"
        f"target: duckdb\nwarehouse: {warehouse}\n")

    # the operator connects failure notifications to the team's webhook (here a local receiver)
    receiver = WebhookReceiver()
    setup = subprocess.run([str(BIN / "clv"), "notifications", "setup", "--webhook-url", receiver.url],
                           env=local_prefect.env, capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0 and "notify when a CLV run fails" in setup.stdout, setup.stderr[-2000:]

    automations = {a["name"]: a for a in local_prefect.api_post("/automations/filter", {})}
    assert set(automations) == {"monitor after each weekly run", "retrain when drift is detected",
                                "retrain when performance degrades", "shadow run after each retraining",
                                "notify when a CLV run fails"}
    assert all(a["description"] and a["enabled"] for a in automations.values())  # what the Prefect UI shows
    weekly = httpx.get(f"{local_prefect.api}/deployments/name/weekly-clv/weekly", timeout=30).json()
    zones = {schedule["schedule"]["timezone"] for schedule in weekly["schedules"]}
    assert zones and all(zone in weekly["description"] for zone in zones)  # the UI lists schedules without it

    # week 0 trains the champion; week 1 is like the weeks before: monitor runs after each, nothing retrains
    for week in (0, 1):
        export_week(shop, exports, week)
        local_prefect.run_weekly(week + 1)
        local_prefect.wait_for_run("monitor", week + 1)
    time.sleep(10)  # an automation fires within seconds of the event it reacts to
    assert local_prefect.runs_of("retrain") == []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select status from drift_history order by cutoff_date").fetchall()[-1] == ("ok",)

    # week 2: the purchase rate doubles -> drift event -> retrain on the shop's data -> shadow
    export_week(shop, exports, shift_week)
    local_prefect.run_weekly(3)
    local_prefect.wait_for_run("monitor", 3)
    retrain = local_prefect.wait_for_run("retrain", 1)
    assert retrain["parameters"] == {"settings_file": "clv-settings.yml", "reason": "clv.drift.detected"}
    local_prefect.wait_for_run("shadow", 1)
    assert len(local_prefect.runs_of("retrain")) == 1

    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select status from drift_history order by cutoff_date").fetchall()[-1] == ("alert",)
        weeks, duplicates = con.execute(
            "select count(distinct cutoff_date), count(*) - count(distinct (cutoff_date, customer_id)) "
            "from clv_scores_history").fetchall()[0]
        landed = con.execute("select count(distinct customer_id) from raw.orders").fetchall()[0][0]
    assert (weeks, duplicates) == (3, 0)
    assert landed <= 6000  # the shop's own customers only: no demo data landed

    # every deployment that writes the warehouse queues on one shared slot: while another holder has it
    # (a run of any of them), a weekly run waits; it completes once the slot is given back
    limits = {limit["name"]: limit for limit in local_prefect.api_post("/v2/concurrency_limits/filter", {})}
    assert (limits["clv-warehouse-writes"]["limit"], limits["clv-warehouse-writes"]["active_slots"]) == (1, 0)
    slot = {"names": ["clv-warehouse-writes"], "slots": 1}
    local_prefect.api_post("/v2/concurrency_limits/increment", {**slot, "mode": "concurrency"})
    local_prefect.api_post(f"/deployments/{local_prefect.deployment_id('weekly-clv', 'weekly')}/create_flow_run", {})
    time.sleep(20)
    waiting = local_prefect.runs_of("weekly")[3]
    assert waiting["state"]["type"] not in TERMINAL, waiting["state"]  # queued behind the holder
    local_prefect.api_post("/v2/concurrency_limits/decrement", slot)
    local_prefect.wait_for_run("weekly", 4)

    # nine runs completed: the failure webhook stayed quiet. A run that fails (an export the settings name
    # is missing) posts one message naming the deployment, the run, its state and the error.
    assert receiver.received == []
    (local_prefect.project / "clv-settings.yml").write_text(
        "orders: exports/missing-orders.parquet\n"
        f"target: duckdb\nwarehouse: {warehouse}\n")
    local_prefect.api_post(f"/deployments/{local_prefect.deployment_id('weekly-clv', 'weekly')}/create_flow_run", {})
    failed = local_prefect.wait_for_run("weekly", 5, expect="FAILED")
    deadline = time.monotonic() + 60
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # and only one
    receiver.stop()
    assert len(receiver.received) == 1, receiver.received
    message = receiver.received[0]
    assert message["subject"] == f"CLV run failed: {failed['name']}"
    assert message["body"].startswith(f"CLV weekly run {failed['name']} ended Failed: ")
    assert "missing-orders.parquet" in message["body"] and f"/runs/flow-run/{failed['id']}" in message["body"]
    assert message["text"] == message["subject"] + "\n" + message["body"]

    from mlflow import MlflowClient

    from clv import config

    monkeypatch.setenv("CLV_HOME", local_prefect.env["CLV_HOME"])  # the store the deployed runs wrote
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = config.default_tracking_uri()
    client = MlflowClient(tracking_uri=store, registry_uri=store)  # not the registry earlier tests set
    versions = {str(v.version): v for v in client.search_model_versions("name = 'clv_xgboost'")}
    assert sorted(versions) == ["1", "2"]
    assert versions["1"].tags["gate_outcome"] == "champion"
    assert versions["2"].tags["gate_outcome"] in {"challenger", "rejected"}  # a stated gate result
    assert client.get_run(versions["2"].run_id).data.params["trigger"] == "clv.drift.detected"
    # what the MLflow UI shows: a run name per model, cutoff and data; descriptions with the gate outcome
    first = client.get_run(versions["1"].run_id)
    tags = first.data.tags
    assert first.info.run_name == (f"{json.loads(tags['model_spec'])['type']}-{tags['data_through']}-"
                                   f"{tags['training_data_hash'][:8]}")
    assert "gate outcome: champion (" in versions["1"].description
    assert client.get_registered_model("clv_xgboost").description.startswith("Predicted customer spend")
