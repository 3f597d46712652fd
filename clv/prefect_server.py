"""The temporary Prefect server of a `clv` command, tied to the command's life.

Without PREFECT_API_URL, Prefect starts a temporary server in a child process and stops it at exit; a
`clv` process killed with SIGKILL (or SIGTERM) never runs that exit handler and the server was left
running. Here the CLI starts that same server itself, from its main thread, with the Linux parent-death
signal set: the kernel kills the server when the `clv` process dies, however it dies."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def start_temporary_server() -> str | None:
    """Start Prefect's temporary server now, tied to this process (Linux); returns its API URL, or None
    when a Prefect server is configured (PREFECT_API_URL) and nothing is started."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.server.api import server as prefect_server

    instance = prefect_server.SubprocessASGIServer()
    if instance.running:
        return instance.api_url
    if sys.platform.startswith("linux"):  # Prefect's module sees a subprocess whose Popen arms the signal
        prefect_server.subprocess = _TiedSubprocess(os.getpid())
    try:
        instance.start()
    finally:
        prefect_server.subprocess = subprocess
    return instance.api_url


class _TiedSubprocess:
    """The subprocess module, except that Popen children die with `parent`."""

    def __init__(self, parent: int):
        self.Popen = functools.partial(subprocess.Popen, preexec_fn=functools.partial(_die_with_parent, parent))

    def __getattr__(self, name):
        return getattr(subprocess, name)
