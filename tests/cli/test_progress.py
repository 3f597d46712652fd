"""The CLI's progress display: plain start/end lines off a terminal, a redrawn status line on one, and
nothing at all unless the CLI turns it on."""

from __future__ import annotations

import io
import time

import pytest

from clv import progress
from clv.progress import CLEAR_LINE, Progress

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


@pytest.fixture(autouse=True)
def progress_off():
    yield
    progress.disable()


@progress.step("land inputs", lambda rows: f"{rows:,} new rows")
def land(rows: int) -> int:
    return rows


@progress.step("score and publish")
def fail() -> None:
    raise ValueError("no customers")


def test_off_a_terminal_each_step_is_a_start_line_and_an_end_line():
    out = io.StringIO()
    progress.enable(out, tty=False)
    assert land(12345) == 12345
    with pytest.raises(ValueError):
        fail()
    lines = out.getvalue().splitlines()
    assert lines[0] == "progress: step 1: land inputs started (run 0:00)"
    assert lines[1].startswith("progress: step 1: land inputs done in 0.0 s: 12,345 new rows (run 0:0")
    assert lines[2] == "progress: step 2: score and publish started (run 0:00)"
    assert lines[3].startswith("progress: step 2: score and publish FAILED after 0.0 s (run 0:0")
    assert CLEAR_LINE not in out.getvalue()


def test_on_a_terminal_a_status_line_is_redrawn_and_log_lines_take_it_away():
    out = io.StringIO()
    shown = Progress(out, tty=True, interval=0.05)
    shown.start("build features (dbt)")
    time.sleep(0.3)
    drawn = out.getvalue()
    assert drawn.count(CLEAR_LINE + "step 1: build features (dbt) ... 0:00 (run 0:00)") >= 3  # redrawn
    with shown.holding_the_line():
        out.write("a log line\n")
    assert out.getvalue().endswith(CLEAR_LINE + "a log line\n")  # the status line went first
    shown.done("build features (dbt)", "scoring cutoff 2024-06-30")
    shown.close()
    after = out.getvalue()
    assert after.rstrip("\n").endswith("scoring cutoff 2024-06-30 (run 0:00)")
    time.sleep(0.15)
    assert out.getvalue() == after  # no step running: nothing redrawn


def test_without_the_cli_steps_print_nothing(capsys):
    assert progress.current() is None
    assert land(3) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
