"""Is new data still arriving? dbt's source freshness on the raw tables (thresholds in
dbt_project/models/staging/_shop__sources.yml, measured on `loaded_at`: how long since new rows last
landed), checked by the weekly run right after landing. A source past `warn_after` is logged and recorded;
past `error_after` the run stops before features are built, so BI keeps last week's scores."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from clv.transform import run_dbt


FEEDS = ("orders", "events")  # the sources with freshness thresholds in _shop__sources.yml


class StaleSourceError(RuntimeError):
    """A source whose newest landed row is older than its error threshold."""


@dataclass
class SourceFreshness:
    source: str
    status: str  # pass, warn, error, or "no rows" (nothing landed yet)
    newest_loaded_at: str | None
    age_hours: float | None
    warn_after: str | None
    error_after: str | None

    def line(self) -> str:
        if self.age_hours is None:
            return f"{self.source}: no rows landed yet"
        return (f"{self.source}: {self.status}, newest rows landed {self.newest_loaded_at} UTC "
                f"({self.age_hours / 24:,.1f} days ago; warn after {self.warn_after or 'never'}, "
                f"error after {self.error_after or 'never'})")


def _threshold(freshness, name: str) -> str | None:
    rule = getattr(freshness, name, None) if freshness is not None else None
    if rule is None or rule.count is None:
        return None
    return f"{rule.count} {rule.period}{'s' if rule.count != 1 else ''}"


def check_source_freshness(warehouse: str | None, target: str = "duckdb") -> list[SourceFreshness]:
    """`dbt source freshness` over the shop's sources that declare thresholds; one result per source.
    Raises StaleSourceError naming every source past its error threshold."""
    from clv.warehouse.embedded import WarehouseReader

    reader = WarehouseReader(target, warehouse)
    checked, delivered = [], []
    for feed in FEEDS:  # a feed with no rows has nothing to be fresh about (and dbt would call it stale)
        if reader.exists(f"raw.{feed}") and not reader.frame(f"select 1 as landed from raw.{feed} limit 1").empty:
            delivered.append(f"source:shop.{feed}")
        else:
            checked.append(SourceFreshness(feed, "no rows", None, None, None, None))
    if not delivered:
        return checked
    result = run_dbt(["source", "freshness", "--select", *delivered], warehouse=warehouse, target=target,
                     check=False)
    for node_result in result.result.results if result.result else []:
        node = node_result.node
        thresholds = (_threshold(node.freshness, "warn_after"), _threshold(node.freshness, "error_after"))
        status = str(getattr(node_result.status, "value", node_result.status))
        newest = getattr(node_result, "max_loaded_at", None)
        if status == "runtime error":
            if "does not exist" not in (node_result.message or ""):  # a missing table: nothing landed yet
                raise StaleSourceError(f"source freshness of {node.name} could not be checked: {node_result.message}")
            newest = None
        newest = pd.Timestamp(newest).tz_localize(None) if newest is not None and pd.Timestamp(newest).tzinfo \
            else (pd.Timestamp(newest) if newest is not None else None)
        if newest is None or newest.year < 1900:  # dbt reports an empty table as 0001-01-01
            checked.append(SourceFreshness(node.name, "no rows", None, None, *thresholds))
            continue
        checked.append(SourceFreshness(node.name, status, newest.isoformat(sep=" ", timespec="seconds"),
                                       round(float(node_result.age) / 3600, 2), *thresholds))
    stale = [c for c in checked if c.status == "error"]
    if stale:
        raise StaleSourceError(
            "no new data: " + "; ".join(c.line() for c in stale) + ". The run stops before building features, "
            "clv_scores keeps the last run's scores; check the export or source that feeds it (thresholds: "
            "dbt_project/models/staging/_shop__sources.yml)")
    return checked


def write_freshness_report(checked: list[SourceFreshness], directory: Path, run_label: str) -> Path:
    """The checks as JSON beside the validation reports ($CLV_HOME/reports)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"freshness-{run_label}.json"
    path.write_text(json.dumps([asdict(c) for c in checked], indent=2) + "\n")
    return path
