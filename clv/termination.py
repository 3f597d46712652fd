"""SIGTERM during a flow command: one line naming the signal and the step, whatever was running.

An orchestrator, a container stop or `kill` ends a run with SIGTERM. While a flow runs, Prefect's own
handler turns it into a TerminationSignal, which the code it lands in may hide: dbt returns the error its
cleanup hit next, DuckDB reports "Query interrupted". So every SIGTERM that reaches the process is
recorded here (ours after the flow, Prefect's wrapped during it), and the CLI reports the run as stopped
by it whatever exception came up."""

from __future__ import annotations

import signal

_received: list[int] = []  # the signals that reached the process since `install`


class Terminated(BaseException):
    """A run stopped by a signal. A BaseException, like KeyboardInterrupt, so that no `except Exception`
    on the way turns it into an ordinary failure."""

    def __init__(self, signum: int, step: str | None):
        super().__init__(signum, step)
        self.signum, self.step = signum, step

    def say(self) -> str:
        where = f" during {self.step}" if self.step else ""
        return (f"stopped by {signal.Signals(self.signum).name}{where}: a publish is all or nothing, so the "
                "tables BI tools read hold whole scores (this run's only if its publish step had finished); "
                "run the week again to complete it")


def _running_step() -> str | None:
    from clv import progress

    running = progress.current()
    return running.last_step if running else None


def install() -> None:
    """SIGTERM raises Terminated from now on, and Prefect's handler (active while a flow runs) records it."""
    _received.clear()

    def stop(signum, frame):
        _received.append(signum)
        raise Terminated(signum, _running_step())

    signal.signal(signal.SIGTERM, stop)
    try:
        from prefect.utilities import engine
    except ImportError:
        return
    prefects = engine._prefect_sigterm_handler
    if getattr(prefects, "records_for_clv", False):
        return

    def recorded(sig_num, *args):
        _received.append(sig_num)
        return prefects(sig_num, *args)

    recorded.records_for_clv = True
    # capture_sigterm installs (and recognises) the handler by this module name at each flow run
    engine._prefect_sigterm_handler = recorded


def as_terminated(exc: BaseException) -> Terminated | None:
    """`exc` as the Terminated it stands for when a SIGTERM reached the process, else None."""
    if isinstance(exc, Terminated):
        return exc
    if not _received:
        return None
    return Terminated(_received[0], _running_step())
