"""Input sources: files (local or S3, globbed by date partition) and a PostgreSQL OLTP database
(incremental by an updated-at watermark). A sources file (YAML) lists them, each with the mapping of
its column names to the input contract; see `sources.example.yml`.

A source resolves to inputs that `clv.landing` stages, validates and commits. A PostgreSQL source's
new watermark is committed in the same transaction as its rows, so re-running a load adds nothing.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml

from clv import storage
from clv.contract import ENTITIES, ContractError

log = logging.getLogger(__name__)

PARTITION_DATE = re.compile(r"(?:^|/)(?:dt|date|day)=(\d{4}-\d{2}-\d{2})(?:/|$)")


class SourceConfigError(ValueError):
    """The sources file is malformed (names the file, the source and the setting)."""


@dataclass
class FileSource:
    """Parquet, CSV or JSON-lines files from a directory or S3. `path` may hold glob patterns; files
    under a `dt=YYYY-MM-DD/` (or `date=`, `day=`) folder are kept when the date is in [since, until]."""

    name: str
    entity: str
    path: str
    columns: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    since: date | None = None
    until: date | None = None

    def files(self, cache_dir: Path) -> list[Path]:
        """The matching files, S3 objects copied to the local cache first; error when none match."""
        if storage.is_s3(self.path):
            urls = [u for u in storage.list_s3(self.path) if self._in_window(u)]
            found = [storage.download(u, cache_dir) for u in urls]
        else:
            found = [Path(p) for p in sorted(glob.glob(self.path, recursive=True)) if self._in_window(p)]
        if not found:
            window = f" with a partition date in [{self.since or '...'}, {self.until or '...'}]" \
                if self.since or self.until else ""
            raise ContractError(f"source {self.name}: no file matches {self.path}{window}")
        return found

    def _in_window(self, path: str | Path) -> bool:
        match = PARTITION_DATE.search(str(path).replace(os.sep, "/"))
        if not match:
            return self.since is None and self.until is None
        day = date.fromisoformat(match.group(1))
        return (self.since is None or day >= self.since) and (self.until is None or day <= self.until)


@dataclass
class PostgresSource:
    """One table of an OLTP PostgreSQL database, extracted incrementally: the rows whose watermark
    column is later than the last one landed. `dsn_env` names the environment variable holding the
    libpq connection string (credentials never live in the sources file)."""

    name: str
    entity: str
    table: str
    watermark_column: str
    dsn_env: str
    columns: dict[str, str] = field(default_factory=dict)

    def connect(self):
        import psycopg2

        dsn = os.environ.get(self.dsn_env)
        if not dsn:
            raise SourceConfigError(f"source {self.name}: environment variable {self.dsn_env} (connection "
                                    "string of the source database) is not set")
        return psycopg2.connect(dsn, connect_timeout=10)

    def extract(self, since: datetime | None, directory: Path) -> tuple[Path | None, datetime | None, int]:
        """Rows with watermark > since as a CSV file, the new watermark and the row count (None, since,
        0 when nothing is new). One repeatable-read snapshot, so the file and the watermark agree."""
        import psycopg2.extensions
        from psycopg2 import sql

        table = sql.SQL(".").join(sql.Identifier(part) for part in self.table.split("."))
        column = sql.Identifier(self.watermark_column)
        condition = sql.SQL("{} > {}").format(column, sql.Literal(since)) if since else sql.SQL("true")
        conn = self.connect()
        try:
            conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
            with conn, conn.cursor() as cur:
                cur.execute(sql.SQL("select count(*), max({}) from {} where {}").format(column, table, condition))
                rows, watermark = cur.fetchone()
                if not rows:
                    return None, since, 0
                path = directory / f"{self.name}.csv"
                query = sql.SQL("select * from {} where {} order by {}").format(table, condition, column)
                with open(path, "w", encoding="utf-8") as handle:
                    cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header true)")
                                    .format(query).as_string(conn), handle)
        finally:
            conn.close()
        return path, watermark, rows


Source = FileSource | PostgresSource


def load_sources(path: Path | str) -> list[Source]:
    """Parse a sources file; errors name the file, the source and the bad setting."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SourceConfigError(f"{path}: cannot be read as YAML ({exc})") from exc
    sources = []
    for index, entry in enumerate(document.get("sources") or []):
        name = entry.get("name") or f"source #{index + 1}"
        where = f"{path}: source {name}"
        kind, entity = entry.get("kind"), entry.get("entity")
        if entity not in ENTITIES:
            raise SourceConfigError(f"{where}: entity must be one of {', '.join(ENTITIES)} (got {entity!r})")
        columns = entry.get("columns") or {}
        known = set(ENTITIES[entity].column_names) | set(ENTITIES[entity].pii_columns)
        unknown = sorted(set(columns) - known)
        if unknown:
            raise SourceConfigError(f"{where}: columns maps unknown contract column(s) {', '.join(unknown)} "
                                    f"(contract columns of {entity}: {', '.join(sorted(known))})")
        try:
            if kind == "files":
                path_setting = os.path.expandvars(entry["path"])
                if not storage.is_s3(path_setting) and not os.path.isabs(path_setting):
                    path_setting = str((path.parent / path_setting).resolve())
                sources.append(FileSource(name, entity, path_setting, columns, entry.get("encoding", "utf-8"),
                                          _date(entry.get("since")), _date(entry.get("until"))))
            elif kind == "postgres":
                sources.append(PostgresSource(name, entity, entry["table"], entry["watermark_column"],
                                              entry.get("dsn_env", "CLV_SOURCE_PG_DSN"), columns))
            else:
                raise SourceConfigError(f"{where}: kind must be files or postgres (got {kind!r})")
        except KeyError as exc:
            raise SourceConfigError(f"{where}: missing setting {exc.args[0]}") from exc
    if not sources:
        raise SourceConfigError(f"{path}: no sources listed (expected a `sources:` list)")
    return sources


def _date(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def land_sources(con, sink, sources: list[Source], cache_dir: Path):
    """Stage and validate every source, then commit them all (or none, when a critical rule fails).
    Returns (load results, validation reports)."""
    from clv.landing import land_staged, stage_file

    staged = []
    with tempfile.TemporaryDirectory(prefix="clv-extract-") as scratch:
        for source in sources:
            if isinstance(source, FileSource):
                files = source.files(cache_dir)
                staged.append(stage_file(con, source.entity, files, sink, source.columns, source.encoding,
                                         source=f"{source.name}: {source.path} ({len(files)} files)"))
                continue
            since = sink.get_watermark(source.name)
            extract, watermark, rows = source.extract(since, Path(scratch))
            if extract is None:
                log.info("source %s: nothing newer than %s", source.name, since)
                continue
            load = stage_file(con, source.entity, extract, sink, source.columns,
                              source=f"{source.name}: {source.table} where {source.watermark_column} > {since}")
            load.watermark = (source.name, watermark)
            staged.append(load)
        reports = [s.report for load in staged for s in (load, *load.derived)]
        return land_staged(con, sink, staged), reports
