"""Input sources: files (local or S3, globbed by date partition) and a PostgreSQL OLTP database
(incremental by an updated-at watermark). A sources file (YAML) lists them, each with the mapping of
its column names to the input contract; see `sources.example.yml`.

A source resolves to inputs that `clv.ingest.landing` stages, validates and commits. A PostgreSQL source's
new watermark is committed in the same transaction as its rows, so re-running a load adds nothing.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

from clv.cloud import storage
from clv.ingest.contract import ENTITIES, ContractError

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_MINUTES = 60  # PostgreSQL sources re-read this much before their watermark
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
            found = [p for p in local_files(self.path, f"source {self.name}") if self._in_window(p)]
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
    lookback_minutes: int = 60

    def connect(self):
        import psycopg2

        dsn = os.environ.get(self.dsn_env)
        if not dsn:
            raise SourceConfigError(f"source {self.name}: environment variable {self.dsn_env} (connection "
                                    "string of the source database) is not set")
        try:
            return psycopg2.connect(dsn, connect_timeout=10)
        except psycopg2.ProgrammingError as exc:
            # libpq quotes a fragment of a malformed string ('missing "=" after "<a piece of it>"'), which
            # may be part of a password: the fragments are dropped
            cause = re.sub(r'"[^"]*"', '"..."', str(exc).strip().splitlines()[0])
            raise SourceConfigError(f"source {self.name}: the connection string in {self.dsn_env} is malformed "
                                    f"(libpq: {cause}; quoted parts withheld)") from None

    def extract(self, since: datetime | None, directory: Path) -> tuple[Path | None, datetime | None, int]:
        """Rows with watermark > since - lookback as a CSV file, the new watermark and the row count (None,
        since, 0 when nothing is there). The lookback re-reads rows committed late with an earlier
        timestamp (a long transaction); rows already landed have the same row keys and are not landed
        twice. One repeatable-read snapshot, so the file and the watermark agree."""
        import psycopg2.extensions
        from psycopg2 import sql

        table = sql.SQL(".").join(sql.Identifier(part) for part in self.table.split("."))
        column = sql.Identifier(self.watermark_column)
        start = since - timedelta(minutes=self.lookback_minutes) if since else None
        # rows without a watermark are read again every run (their row keys land them once): a strict `>`
        # would never read one inserted after the first load
        condition = (sql.SQL("({} > {} or {} is null)").format(column, sql.Literal(start), column) if since
                     else sql.SQL("true"))
        conn = self.connect()
        try:
            conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
            with conn, conn.cursor() as cur:
                cur.execute(sql.SQL("select count(*), max({}), count(*) filter (where {} is null) from {} where {}")
                            .format(column, column, table, condition))
                rows, watermark, undated = cur.fetchone()
                if not rows:
                    return None, since, 0
                if undated:
                    log.warning("source %s: %d rows without %s are read again every run; give them one",
                                self.name, undated, self.watermark_column)
                watermark = max(w for w in (watermark, since) if w is not None) if (watermark or since) else None
                path = directory / f"{self.name}.csv"
                query = sql.SQL("select * from {} where {} order by {}").format(table, condition, column)
                with open(path, "w", encoding="utf-8") as handle:
                    cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header true)")
                                    .format(query).as_string(conn), handle)
        finally:
            conn.close()
        return path, watermark, rows


Source = FileSource | PostgresSource
WILDCARDS = ("*", "?")


def local_files(path: str, what: str) -> list[Path]:
    """The files a local path names: the file itself when it exists (brackets and all), else the files
    matching its `*`/`?` wildcards (brackets stay literal). A directory is refused with a hint."""
    given = Path(path)
    if given.is_dir():
        raise ContractError(f"{what}: {path} is a directory (rule: give a file, or a pattern such as "
                            f"{given / '*.parquet'})")
    if given.exists():
        return [given]
    if not any(w in path for w in WILDCARDS):
        raise ContractError(f"{what}: file not found: {path}")
    return [Path(p) for p in sorted(glob.glob(path.replace("[", "[[]"), recursive=True)) if not Path(p).is_dir()]


SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Settings per kind: (type, required). `columns` is checked against the contract separately.
SETTINGS = {
    "files": {"name": (str, False), "kind": (str, True), "entity": (str, True), "path": (str, True),
              "columns": (dict, False), "encoding": (str, False), "since": (date, False), "until": (date, False)},
    "postgres": {"name": (str, True), "kind": (str, True), "entity": (str, True), "table": (str, True),
                 "watermark_column": (str, True), "dsn_env": (str, False), "columns": (dict, False),
                 "lookback_minutes": (int, False)},
}
TYPE_NAMES = {str: "text", dict: "a mapping", date: "a date (YYYY-MM-DD)", int: "a whole number"}


class _LineLoader(yaml.SafeLoader):
    """YAML loader that remembers the line of every mapping and of each of its keys."""


def _mapping_with_lines(loader, node):
    mapping = {}
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return _Located(mapping, node.start_mark.line + 1, lines)


class _Located(dict):
    def __init__(self, mapping, line, key_lines):
        super().__init__(mapping)
        self.line, self.key_lines = line, key_lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_lines)


def load_sources(path: Path | str) -> list[Source]:
    """Parse and validate a sources file; errors name the file, the line, the source and the setting."""
    path = Path(path)
    if not path.exists():
        example = Path(__file__).resolve().parents[2] / "sources.example.yml"
        raise SourceConfigError(f"{path}: the sources file does not exist: copy {example.name} ({example}) to "
                                f"{path} and list the shop's inputs there, or give `orders:` in the settings instead")
    try:
        document = yaml.load(path.read_text(), Loader=_LineLoader) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SourceConfigError(f"{path}: cannot be read as YAML ({exc})") from None
    if not isinstance(document, dict) or set(document) - {"sources"}:
        extra = sorted(set(document) - {"sources"}) if isinstance(document, dict) else []
        raise SourceConfigError(f"{path}: expected a mapping with one key, `sources:`"
                                + (f" (unknown key(s) {', '.join(map(str, extra))})" if extra else ""))
    entries = document.get("sources") or []
    if not isinstance(entries, list):
        raise SourceConfigError(f"{path}: `sources:` must be a list of sources")
    sources, names = [], set()
    for index, entry in enumerate(entries):
        source = _parse_source(path, index, entry)
        if source.name in names:
            raise SourceConfigError(f"{path}: source {source.name}: the name is used twice (names key watermarks)")
        names.add(source.name)
        sources.append(source)
    if not sources:
        raise SourceConfigError(f"{path}: no sources listed (expected a `sources:` list)")
    return sources


def _parse_source(path: Path, index: int, entry) -> Source:
    if not isinstance(entry, _Located):
        raise SourceConfigError(f"{path}: source #{index + 1} is not a mapping of settings (got {entry!r:.60})")
    name = entry.get("name") or f"source-{index + 1}"
    where = f"{path}, line {entry.line}: source {name}"
    kind = entry.get("kind")
    if kind not in SETTINGS:
        raise SourceConfigError(f"{where}: kind must be files or postgres (got {kind!r})")
    allowed = SETTINGS[kind]
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        raise SourceConfigError(f"{path}, line {entry.key_lines[unknown[0]]}: source {name}: unknown setting(s) "
                                f"{', '.join(map(str, unknown))} (settings of a {kind} source: {', '.join(allowed)})")
    for key, (kind_of_value, required) in allowed.items():
        if key not in entry or entry[key] is None:
            if required and not (key == "name" and kind == "files"):
                raise SourceConfigError(f"{where}: missing setting {key}")
            continue
        value = entry[key]
        if not isinstance(value, kind_of_value) or isinstance(value, bool) or (kind_of_value is date and isinstance(value, datetime)):
            raise SourceConfigError(f"{path}, line {entry.key_lines[key]}: source {name}: {key} must be "
                                    f"{TYPE_NAMES[kind_of_value]} (got {value!r:.60})")
    if not SOURCE_NAME.match(name):
        raise SourceConfigError(f"{where}: name must be letters, digits, '_', '-' or '.', starting with a letter "
                                "or digit (it names the extract file and the watermark)")
    entity = entry["entity"]
    if entity not in ENTITIES:
        raise SourceConfigError(f"{where}: entity must be one of {', '.join(ENTITIES)} (got {entity!r})")
    columns = {str(k): v for k, v in (entry.get("columns") or {}).items()}
    known = set(ENTITIES[entity].column_names) | set(ENTITIES[entity].pii_columns)
    unknown = sorted(set(columns) - known)
    if unknown:
        raise SourceConfigError(f"{where}: columns maps unknown contract column(s) {', '.join(unknown)} "
                                f"(contract columns of {entity}: {', '.join(sorted(known))})")
    bad = [k for k, v in columns.items() if not isinstance(v, str) or not v]
    if bad:
        raise SourceConfigError(f"{where}: columns.{bad[0]} must name a source column (got {columns[bad[0]]!r})")
    if kind == "files":
        path_setting = os.path.expandvars(entry["path"])
        if not storage.is_s3(path_setting) and not os.path.isabs(path_setting):
            path_setting = str((path.parent / path_setting).resolve())
        return FileSource(name, entity, path_setting, columns, entry.get("encoding") or "utf-8",
                          entry.get("since"), entry.get("until"))
    lookback = entry.get("lookback_minutes")
    if lookback is not None and lookback < 0:
        raise SourceConfigError(f"{where}: lookback_minutes must be 0 or more (got {lookback})")
    return PostgresSource(name, entity, entry["table"], entry["watermark_column"],
                          entry.get("dsn_env") or "CLV_SOURCE_PG_DSN", columns,
                          DEFAULT_LOOKBACK_MINUTES if lookback is None else lookback)


def run_sources(orders: str | None, customers: str | None, events: str | None,
                sources: str | None) -> list[Source]:
    """The sources of a run: a sources file, plus any input files given directly."""
    listed = load_sources(sources) if sources else []
    listed += [FileSource(entity, entity, str(path)) for entity, path in
               (("orders", orders), ("customers", customers), ("events", events)) if path]
    return listed


def preflight(sources: list[Source]) -> None:
    """Check each local file source the way landing will (files found, readable, complete, required columns
    present), reading headers and schemas only: the usual mistakes answered in a second, before a server
    or dbt starts. S3 and PostgreSQL sources are checked when they are landed."""
    from clv.ingest.landing import check_readable

    for source in sources:
        if isinstance(source, FileSource) and not storage.is_s3(source.path):
            files = source.files(Path(tempfile.gettempdir()))
            check_readable(source.entity, files, source.columns, source.encoding,
                           source=f"{source.name}: {source.path} ({len(files)} files)")


def land_sources(con, sink, sources: list[Source], cache_dir: Path):
    """Stage and validate every source, then commit them all (or none, when a critical rule fails).
    Returns (load results, validation reports)."""
    from clv.ingest.landing import land_staged, stage_file

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
                              source=f"{source.name}: {source.table} where {source.watermark_column} > {since} "
                                     f"- {source.lookback_minutes} min")
            load.watermark = (source.name, watermark)
            staged.append(load)
        reports = [s.report for load in staged for s in (load, *load.derived)]
        return land_staged(con, sink, staged), reports
