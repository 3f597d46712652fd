"""Storage faults said in one line: a disk that fills or a directory this user may not write.

They reach the CLI from anywhere (the run lock, landing, dbt, MLflow, the export) as an OSError or as
DuckDB's IOException, often wrapped by whatever was writing; `describe` finds one in an exception's chain
and says which path, why, and what to do. Writes that fail this way leave the tables BI tools read as
they were (every publish is one transaction or one rename)."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# DuckDB reports its own writes as text: 'IO Error: Could not write file "<path>": No space left on device'
_DUCKDB_FILE = re.compile(r'file "([^"]+)": [^"]*$')
_DUCKDB_REASONS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                   "Permission denied": errno.EACCES, "Read-only file system": errno.EROFS}


def _fault(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, path) of a storage fault, or None. Besides OSErrors, the text of DuckDB's errors and of
    errors that quote them (a dbt build that failed on a full disk)."""
    if isinstance(exc, OSError) and exc.errno in FULL + NOT_WRITABLE:
        return exc.errno, exc.filename
    text = str(exc)
    for reason, code in _DUCKDB_REASONS.items():
        found = _DUCKDB_FILE.search(text.split(reason)[0] + reason) if reason in text else None
        if found or (code in FULL and reason in text):
            return code, found.group(1) if found else None
    return None


def describe(exc: BaseException, home: Path) -> str | None:
    """One line for a storage fault anywhere in `exc`'s chain (causes and contexts), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        fault = _fault(exc)
        if fault is not None:
            return _line(*fault, home)
        exc = exc.__cause__ or exc.__context__
    return None


def _line(code: int, path: str | None, home: Path) -> str:
    where = path or str(home)
    if code in FULL:
        free = _free_megabytes(Path(where))
        room = f" ({free:,} MB free)" if free is not None else ""
        return (f"the disk holding {where} is full{room}: the run stopped before publishing, and the tables BI "
                f"tools read are as they were; free space (or point CLV_HOME at a larger disk) and run again")
    reason = "is on a read-only file system" if code == errno.EROFS else "may not be written by this user"
    return (f"{where} {reason}: CLV_HOME ({home}) must be writable by the user running clv (uid {os.getuid()}); "
            f"fix its permissions or set CLV_HOME to a writable directory")


def _free_megabytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free // 2**20
    return None
