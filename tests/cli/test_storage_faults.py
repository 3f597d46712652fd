"""A full disk, a home this user may not write, and SIGTERM in the middle of a run: one error line naming
the cause and what to do, no traceback, and nothing lost (what could not be written left the warehouse as
it was).

The disk is a 40 MB tmpfs mounted in a private mount namespace (`unshare -m`, which needs root); the
unwritable home is a directory of mode 555 read by the `nobody` user (`setpriv`, also root). Where the
machine allows neither, the tests say so and skip."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from clv import storage_faults
from clv.warehouse.transactions import rollback_keeping_the_error
from tests.cli.test_cli_hardening import CLV, assert_one_error_line


def _needs_root(tool: str) -> None:
    if os.geteuid() != 0 or shutil.which(tool) is None:
        pytest.skip(f"needs root and {tool} to make the fault (running as uid {os.geteuid()})")


@pytest.mark.slow
@pytest.mark.parametrize("megabytes, landed", [(40, "0"), (62, "809560")], ids=["while-landing", "during-dbt"])
def test_a_disk_that_fills_is_named_and_the_warehouse_keeps_nothing_half_landed(tmp_path, megabytes, landed):
    """40 MB fill up while the demo's orders land (the load is refused whole); 62 MB while dbt builds
    (the lines landed stay, and DuckDB's fatal "database has been invalidated" is not what the user reads)."""
    _needs_root("unshare")
    home = tmp_path / "small-disk"
    home.mkdir()
    script = (f"mount -t tmpfs -o size={megabytes}m tmpfs {home} || exit 99; "
              f"{CLV} run --demo; code=$?; "
              f"{Path(CLV).with_name('python')} -c \"import duckdb; print('orders landed:', duckdb.connect("
              f"'{home}/warehouse/clv.duckdb', read_only=True).execute('select count(*) from raw.orders').fetchone()[0])\"; "
              "exit $code")
    environment = {**os.environ, "CLV_HOME": str(home), "PREFECT_HOME": str(tmp_path / "prefect")}
    for inherited in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        environment.pop(inherited, None)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], env=environment, capture_output=True, text=True,
                          timeout=600)
    if done.returncode == 99:
        pytest.skip(f"this machine cannot mount a tmpfs in a new mount namespace: {done.stderr[-300:]}")
    assert f"orders landed: {landed}\n" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    # the one extra line on stdout is the check above
    done.stdout = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("orders landed"))
    assert "Logging error" not in done.stderr
    assert_one_error_line(done, 1, f"the disk holding {home}/warehouse/clv.duckdb",  " is full (",
                          "the tables BI tools read are as they were", "free space")


@pytest.mark.slow
def test_a_home_this_user_may_not_write_is_named_with_the_user(tmp_path):
    _needs_root("setpriv")
    home = tmp_path / "home"
    home.mkdir(mode=0o555)
    os.chmod(tmp_path, 0o755)
    environment = {**os.environ, "CLV_HOME": str(home), "HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    for inherited in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        environment.pop(inherited, None)
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLV, "run", "--demo"],
                          env=environment, capture_output=True, text=True, timeout=300)
    assert_one_error_line(done, 1, f"{home}/warehouse may not be written by this user",
                          f"CLV_HOME ({home}) must be writable by the user running clv (uid 65534)")


@pytest.mark.fast
def test_storage_faults_are_found_through_the_exceptions_that_wrap_them(tmp_path):
    try:
        try:
            raise duckdb.IOException(f'IO Error: Could not write file "{tmp_path}/w.duckdb": No space left on device')
        except duckdb.IOException as inner:
            raise RuntimeError("task failed") from inner
    except RuntimeError as outer:
        wrapped = outer
    message = storage_faults.describe(wrapped, tmp_path)
    assert message.startswith(f"the disk holding {tmp_path}/w.duckdb is full (") and " MB free)" in message
    read_only = OSError(errno.EROFS, "Read-only file system", str(tmp_path / "mlflow"))
    assert storage_faults.describe(read_only, tmp_path).startswith(f"{tmp_path}/mlflow is on a read-only file system")
    # anything else is not a storage fault: it keeps its own message and traceback
    assert storage_faults.describe(FileNotFoundError(errno.ENOENT, "No such file", "x"), tmp_path) is None
    assert storage_faults.describe(duckdb.IOException("IO Error: Cannot open file: not a database"), tmp_path) is None
    assert storage_faults.describe(ValueError("bad"), tmp_path) is None


@pytest.mark.fast
def test_a_rollback_after_the_transaction_already_ended_keeps_the_real_error():
    """A commit that cannot write ends the transaction itself; rolling back then raised DuckDB's "cannot
    rollback - no transaction is active", which replaced the disk-full error in the message."""
    con = duckdb.connect()
    with pytest.raises(duckdb.TransactionException, match="no transaction is active"):
        con.execute("rollback")  # what the old code ran
    rollback_keeping_the_error(con)  # says nothing
    con.execute("begin transaction")
    con.execute("create table t as select 1 as x")
    rollback_keeping_the_error(con)
    assert con.execute("select count(*) from information_schema.tables where table_name = 't'").fetchone() == (0,)


@pytest.mark.slow
@pytest.mark.parametrize("step, landed", [("step 1: land inputs", (0, 809560)),  # DuckDB: "Query interrupted"
                                          ("step 3: build features (dbt)", (809560,))],  # dbt: "connection is busy"
                         ids=["landing", "dbt"])  # (in training Prefect's TerminationSignal comes up as it is)
def test_sigterm_names_the_signal_and_the_step_and_loses_no_landed_line(tmp_path, step, landed):
    """dbt caught Prefect's TerminationSignal and returned the error its cleanup hit next ("connection is
    busy"), then printed its stack traces: the run ended with an unrelated cause. Now the signal itself
    ends the run, with exit code 143 and one line; a load it interrupts lands whole or not at all."""
    home = tmp_path / "home"
    environment = {**os.environ, "CLV_HOME": str(home), "PREFECT_HOME": str(tmp_path / "prefect")}
    for inherited in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        environment.pop(inherited, None)
    run = subprocess.Popen([CLV, "run", "--demo"], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    seen = []
    for line in run.stderr:
        seen.append(line)
        if f"{step} started" in line:
            break
    time.sleep(2)  # well inside the step: on the demo, landing takes about 13 s, dbt 20 s, training 28 s
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=120)
    done = subprocess.CompletedProcess(run.args, run.returncode, stdout, "".join(seen) + stderr)
    assert_one_error_line(done, 128 + signal.SIGTERM, f"stopped by SIGTERM during {step}", "run the week again")
    assert "connection is busy" not in done.stdout + done.stderr
    with duckdb.connect(str(home / "warehouse" / "clv.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.orders").fetchone()[0] in landed
