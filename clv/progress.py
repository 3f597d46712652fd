"""Progress of a long CLI run: which step is running, how long it and the run have taken, and what each
finished step handled (rows landed, customers scored). On a terminal, a status line under the log is
redrawn every second; elsewhere (a file, CI, a pipe) one plain line when a step starts and one when it
ends. Off unless the CLI turns it on (`enable`), so deployed runs log as usual."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from functools import wraps
from typing import Callable, TextIO

CLEAR_LINE = "\r\033[K"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class Progress:
    """Step start/end reports for one run, drawn on `stream`."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, interval: float = 1.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.started = time.monotonic()
        self.step: str | None = None
        self.last_step: str | None = None  # "step 3: build features (dbt)", kept after it ends
        self.step_started = 0.0
        self.number = 0
        self._lock = threading.Lock()
        self._drawn = False
        self._stop = threading.Event()
        self._ticker = None
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, name="clv-progress", daemon=True)
            self._ticker.start()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def status_line(self) -> str:
        now = time.monotonic()
        return (f"step {self.number}: {self.step} ... {_clock(now - self.step_started)} "
                f"(run {_clock(now - self.started)})")

    def start(self, step: str) -> None:
        with self._lock:
            self.number += 1
            self.step, self.step_started = step, time.monotonic()
            self.last_step = f"step {self.number}: {step}"
            if self.tty:
                self._draw()
            else:
                self._write(f"progress: step {self.number}: {step} started (run {_clock(self.step_started - self.started)})\n")

    def done(self, step: str, detail: str = "", failed: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            outcome = "FAILED after" if failed else "done in"
            line = (f"progress: step {self.number}: {step} {outcome} {now - self.step_started:,.1f} s"
                    f"{': ' + detail if detail else ''} (run {_clock(now - self.started)})")
            self._clear()
            self._write(line + "\n")
            self.step = None

    @contextmanager
    def holding_the_line(self):
        """While another line is written on the terminal: the status line is taken away (redrawn next tick)."""
        with self._lock:
            self._clear()
            yield

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self._write(CLEAR_LINE)
            self._drawn = False

    def _draw(self) -> None:
        if self.step is not None:
            self._write(CLEAR_LINE + self.status_line())
            self._drawn = True

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._clear()


_current: Progress | None = None


def enable(stream: TextIO | None = None, tty: bool | None = None) -> Progress:
    global _current
    _current = Progress(stream, tty)
    return _current


def disable() -> None:
    global _current
    if _current is not None:
        _current.close()
    _current = None


def current() -> Progress | None:
    return _current


def step(label: str, detail: Callable[[object], str] | None = None):
    """Decorator of a pipeline step: reports its start and end (with `detail(result)`) when progress is on."""
    def wrap(fn):
        @wraps(fn)
        def reported(*args, **kwargs):
            progress = _current
            if progress is None:
                return fn(*args, **kwargs)
            progress.start(label)
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                progress.done(label, failed=True)
                raise
            progress.done(label, detail(result) if detail else "")
            return result
        return reported
    return wrap
