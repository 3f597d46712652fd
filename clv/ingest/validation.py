"""Input validation with Great Expectations: the suites in `gx/expectations/`, run on each staged load.

Each expectation carries `meta.severity` (`critical`: the load is refused and the run halts before dbt;
`warning`: reported, the run goes on) and may carry `meta.quarantine` (rows breaking it are kept out of
the raw table and stored in `raw.quarantine` with the reason). Quarantine rules are evaluated on every
row in SQL; Great Expectations evaluates the suite on the staged load (or on a repeatable sample of it
when the load is larger than `CLV_VALIDATION_SAMPLE_ROWS`, default 1,000,000 rows). Load-level
expectations (row count, median line value) compare the load with the recent loads of the same entity and
are skipped while there is no history; the row count is the whole load's, sampled or not. Quarantined
rows warn when a reason's share of the load is unusual for the recent loads (`quarantine_check`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pandas as pd

from clv.config import REPO_ROOT

log = logging.getLogger(__name__)

SUITES_DIR = REPO_ROOT / "gx" / "expectations"
SAMPLE_ROWS_ENV = "CLV_VALIDATION_SAMPLE_ROWS"
DEFAULT_SAMPLE_ROWS = 1_000_000
# Bounds of the load-level checks, relative to the median of the last loads of the same entity.
RECENT_LOADS = 5
ROW_COUNT_FACTOR = 10.0
MEDIAN_VALUE_FACTOR = 5.0
# A quarantine reason warns when its share of the load is over this factor times its usual share, and this
# share of the load's rows above it: Online Retail quarantines 2-64% of a week's lines for a missing
# customer id (a median of about 21%), which is the shop's normal, not news each week.
QUARANTINE_SHARE_FACTOR = 2.0
QUARANTINE_SHARE_SLACK = 0.001
QUARANTINE_EXPECTATION = "expect_quarantined_share_to_be_usual"
EARLIEST_PLAUSIBLE_TS = pd.Timestamp("1990-01-01")  # CDNOW, the BTYD benchmark, is from 1997
MAX_PLAUSIBLE_LINE_VALUE = 50_000.0


class InputValidationError(ValueError):
    """A load broke a critical expectation. The message names each failed rule, column and row count."""

    def __init__(self, reports: list["ValidationReport"]):
        self.reports = reports
        failed = [f"{r.entity} from {r.source}: " + "; ".join(c.describe() for c in r.critical_failures)
                  for r in reports if r.critical_failures]
        super().__init__("input validation failed, nothing was landed: " + " | ".join(failed))


@dataclass
class CheckResult:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    checked_rows: int | None
    observed: str | None
    rule: str

    def describe(self) -> str:
        where = f"column {self.column}" if self.column else "table"
        count = f"{self.unexpected_count:,} of {self.checked_rows:,} rows" if self.unexpected_count is not None else ""
        observed = f"observed {self.observed}" if self.observed is not None else ""
        detail = ", ".join(x for x in (count, observed) if x)
        return f"{self.expectation} on {where} failed ({detail}): {self.rule}"


@dataclass
class ValidationReport:
    entity: str
    source: str
    rows_read: int
    rows_checked: int
    quarantined: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == "critical"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity != "critical"]

    @property
    def status(self) -> str:
        # quarantined rows make a warning through the quarantine check (`quarantine_check`)
        return "failed" if self.critical_failures else ("warnings" if self.warnings else "passed")

    def as_dict(self) -> dict:
        return {**asdict(self), "status": self.status, "rows_quarantined": sum(self.quarantined.values())}

    def to_markdown(self) -> str:
        lines = [f"### {self.entity} from `{self.source}`: **{self.status}**",
                 f"{self.rows_read:,} rows read; {sum(self.quarantined.values()):,} quarantined"
                 + (f"; expectations checked on a sample of {self.rows_checked:,} rows"
                    if self.rows_checked < self.rows_read else ""), ""]
        if self.ignored_columns:
            lines += [f"Columns not in the input contract, ignored: {', '.join(self.ignored_columns)}", ""]
        if self.quarantined:
            lines += ["| quarantine reason | rows |", "|---|---:|"]
            lines += [f"| {reason} | {n:,} |" for reason, n in sorted(self.quarantined.items())] + [""]
        lines += ["| expectation | column | severity | result | unexpected rows | observed |",
                  "|---|---|---|---|---:|---|"]
        for c in self.checks:
            count = "" if c.unexpected_count is None else f"{c.unexpected_count:,}"
            lines.append(f"| {c.expectation} | {c.column or ''} | {c.severity} | {'pass' if c.success else 'FAIL'} "
                         f"| {count} | {c.observed or ''} |")
        return "\n".join(lines)


@lru_cache(maxsize=None)
def load_suite(entity: str) -> dict:
    """The suite of an entity as stored in the repo (a Great Expectations suite in JSON)."""
    path = SUITES_DIR / f"{entity}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {entity}: expected {path}")
    return json.loads(path.read_text())


def _sql_literal(value) -> str:
    if isinstance(value, (pd.Timestamp, datetime)):
        return f"timestamp '{pd.Timestamp(value).isoformat(sep=' ')}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value))


def _resolve(value, parameters: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters.get(value["$PARAMETER"])
    return value


def quarantine_rules(entity: str, parameters: dict) -> list[tuple[str, str]]:
    """(reason, SQL predicate that is true for a breaking row) for each quarantining expectation."""
    rules = []
    for expectation in load_suite(entity)["expectations"]:
        meta, kwargs = expectation.get("meta", {}), expectation["kwargs"]
        if not meta.get("quarantine"):
            continue
        column = f'"{kwargs["column"]}"'
        kind = expectation["type"]
        if kind == "expect_column_values_to_not_be_null":
            predicate = f"{column} is null"
        elif kind == "expect_column_values_to_be_between":
            low, high = _resolve(kwargs.get("min_value"), parameters), _resolve(kwargs.get("max_value"), parameters)
            parts = [f"{column} {'<=' if kwargs.get('strict_min') else '<'} {_sql_literal(low)}"] if low is not None else []
            parts += [f"{column} {'>=' if kwargs.get('strict_max') else '>'} {_sql_literal(high)}"] if high is not None else []
            predicate = " or ".join(parts) or "false"
        elif kind == "expect_column_values_to_be_in_set":
            allowed = ", ".join(_sql_literal(v) for v in kwargs["value_set"])
            predicate = f"{column} is not null and {column} not in ({allowed})"
        else:
            raise ValueError(f"suite {entity}: {kind} cannot quarantine rows (only null, range and set rules can)")
        rules.append((meta.get("reason", f"{kind} on {kwargs['column']}"), f"({predicate})"))
    return rules


def _median(values) -> float:
    return float(pd.Series(values).median())


def run_parameters(recent_loads: list[tuple], now: datetime | None = None) -> dict:
    """Values of the suites' $PARAMETERs: plausible time window, value bounds, and the load-level
    bounds from recent loads (rows read, median line value, days covered), None when there is no history.
    The row-count bounds here ignore the days a load covers; staging sets them per day
    (`row_count_bounds`) once it knows the load's days."""
    now = pd.Timestamp(now or datetime.now())
    means = [load[1] for load in recent_loads if load[1] is not None]
    return {
        "earliest_plausible_ts": EARLIEST_PLAUSIBLE_TS,
        "latest_plausible_ts": now + timedelta(days=1),
        "min_plausible_line_value": -MAX_PLAUSIBLE_LINE_VALUE,
        "max_plausible_line_value": MAX_PLAUSIBLE_LINE_VALUE,
        **row_count_bounds(recent_loads),
        "line_value_median_min": _median(means) / MEDIAN_VALUE_FACTOR if means else None,
        "line_value_median_max": _median(means) * MEDIAN_VALUE_FACTOR if means else None,
    }


def row_count_bounds(recent_loads: list[tuple], days_covered: int | None = None) -> dict:
    """The rows a load may hold without a warning: ROW_COUNT_FACTOR times fewer or more than expected.
    Expected: the recent loads' median rows per day covered (distinct days of the entity's date column)
    times the days this load covers, so that a weekly load after a first backfill of two years is measured
    against the backfill's rows per day, not its size; the median row count of the recent loads when days
    are unknown (undated rows, or loads logged before days were recorded). None without history."""
    per_day = [load[0] / load[2] for load in recent_loads if load[0] and len(load) > 2 and load[2]]
    rows = [load[0] for load in recent_loads if load[0]]
    if days_covered and per_day:
        expected = _median(per_day) * days_covered
    elif rows:
        expected = _median(rows)
    else:
        return {"row_count_min": None, "row_count_max": None}
    return {"row_count_min": expected / ROW_COUNT_FACTOR, "row_count_max": expected * ROW_COUNT_FACTOR}


def usual_quarantine_shares(recent_loads: list[tuple]) -> dict[str, float] | None:
    """Each quarantine reason's median share of the rows read in the recent loads that recorded their
    reasons (0 in a load without it); None when no recent load did (none yet, or logged before)."""
    loads = [(load[0], json.loads(load[3])) for load in recent_loads if len(load) > 3 and load[3] and load[0]]
    if not loads:
        return None
    reasons = {reason for _, counts in loads for reason in counts}
    return {reason: _median([counts.get(reason, 0) / rows for rows, counts in loads]) for reason in reasons}


# What the bundled datasets are known to quarantine, as a share of their rows (data/bundled/README.md): the
# demo's first load compares with these instead of warning about rows nobody needs to look at.
KNOWN_QUARANTINE_SHARES = {
    "online_retail_ii.parquet": {"customer_id is missing (guest checkout or broken export)": 0.225},
}


def known_quarantine_shares(source: str) -> dict[str, float] | None:
    """The known shares of a load that reads one bundled file (`orders: <path> (1 files)`), else None."""
    from clv.config import BUNDLED_DATA_DIR

    found = re.search(r"(/\S+) \(1 files\)$", source) or re.search(r"(/\S+)$", source)
    if not found:
        return None
    try:
        relative = Path(found.group(1)).resolve().relative_to(BUNDLED_DATA_DIR.resolve())
    except (ValueError, OSError):
        return None
    return KNOWN_QUARANTINE_SHARES.get(str(relative))


def quarantine_check(quarantined: dict[str, int], rows: int, recent_loads: list[tuple],
                     known_shares: dict[str, float] | None = None) -> CheckResult | None:
    """The quarantine's warning: it fails when a reason quarantined over QUARANTINE_SHARE_FACTOR times its
    usual share of the rows (`usual_quarantine_shares`), and over QUARANTINE_SHARE_SLACK above it; without
    recent loads to compare with, when any row was quarantined, unless the file's `known_shares` (what a
    bundled dataset is known to hold, `KNOWN_QUARANTINE_SHARES`) stand in for the usual. None when no row was."""
    if not quarantined or not rows:
        return None
    usual = usual_quarantine_shares(recent_loads)
    known = usual is None and bool(known_shares)
    if known:
        usual = known_shares
    shares = {reason: n / rows for reason, n in quarantined.items()}
    if usual is None:
        unusual = sorted(shares)
    else:
        unusual = sorted(reason for reason, share in shares.items()
                         if share > QUARANTINE_SHARE_FACTOR * usual.get(reason, 0.0) + QUARANTINE_SHARE_SLACK)
    shown = unusual or sorted(shares)
    observed = "; ".join(f"{reason}: {shares[reason]:.1%}"
                         + (f" (usual {usual.get(reason, 0.0):.1%})" if usual is not None else "") for reason in shown)
    return CheckResult(
        expectation=QUARANTINE_EXPECTATION, column=None, severity="warning", success=not unusual,
        unexpected_count=sum(quarantined[reason] for reason in unusual), checked_rows=rows,
        observed=(f"{observed} (the bundled data's known shares: Online Retail II's guest checkouts)" if known else
                  observed if usual is not None else f"{observed} (no recent loads to compare with)"),
        rule=f"a quarantine reason's share of the load over {QUARANTINE_SHARE_FACTOR:g}x its median share in the "
             f"last {RECENT_LOADS} loads and {QUARANTINE_SHARE_SLACK:.1%} of the rows above it (any quarantined row "
             f"when there are no recent loads)")


# An order line whose quantity or value is this many times the load's median (in absolute terms) is
# not a sale but a unit or export error (1e12 units). Online Retail's largest genuine line (80,995 units,
# 168,470 in value) is about 27,000 times its median quantity and 10,000 times its median value.
IMPLAUSIBLE_FACTOR = 100_000.0
CAST_FAILURE_SHARE = 0.01  # more than this share of a column failing to type refuses the load


def plausible_line_bounds(median_abs_quantity: float | None, median_abs_line_value: float | None) -> dict:
    """$PARAMETERs of the implausible-line rules: +-IMPLAUSIBLE_FACTOR x the load's median absolute
    quantity and line value (at least 1 unit, 1 currency unit)."""
    quantity = IMPLAUSIBLE_FACTOR * max(median_abs_quantity or 0.0, 1.0)
    value = IMPLAUSIBLE_FACTOR * max(median_abs_line_value or 0.0, 1.0)
    return {"quantity_bound_low": -quantity, "quantity_bound_high": quantity,
            "line_value_bound_low": -value, "line_value_bound_high": value}


def _likely_cause(sample: str | None) -> str:
    text = (sample or "").strip()
    if re.fullmatch(r"-?\d{9,13}", text):
        return "epoch seconds or milliseconds? give ISO 8601 times (YYYY-MM-DD HH:MM:SS)"
    if re.fullmatch(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}.*", text):
        return "day and month in local order? give ISO 8601 times (YYYY-MM-DD HH:MM:SS)"
    if re.fullmatch(r"-?[\d.]*\d,\d+", text):
        return "a decimal comma? export numbers with a decimal point"
    if re.search(r"[€$£¥]|[A-Z]{3}", text) and re.search(r"\d", text):
        return "a currency sign in the number? export the amount only"
    if re.fullmatch(r"-?\d+\.\d*[1-9]\d*", text):
        return "a number with decimals where an id is expected"
    if text.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return "not a finite number"
    return "not in the contract's format"


_PERSONAL_PATTERNS = (
    ("an e-mail address", re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")),
    ("a phone number", re.compile(r"\+\d[\d ().-]{6,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}")),
)


def quoted_sample(sample: str | None) -> str:
    """A failed value as a message may show it: quoted, unless it looks like personal data (an e-mail in a
    date column must reach neither the logs, the validation report nor the Prefect database)."""
    for kind, pattern in _PERSONAL_PATTERNS:
        if sample and pattern.search(sample):
            return f"withheld (it looks like {kind}: personal data in the wrong column?)"
    return repr(sample)


def cast_check(column: str, failed: int, rows: int, sample: str | None, reason: str) -> "CheckResult":
    """The typing check of one column: how many values did not type, one sample (withheld when it looks
    like personal data) and its likely cause."""
    share = failed / rows if rows else 0.0
    return CheckResult(
        expectation="expect_column_values_to_match_contract_type", column=column,
        severity="critical", success=share <= CAST_FAILURE_SHARE, unexpected_count=failed, checked_rows=rows,
        observed=f"sample {quoted_sample(sample)}: {_likely_cause(sample)}",
        rule=f"{reason} (rows quarantined; over {CAST_FAILURE_SHARE:.0%} of the load refuses it)")


def sample_rows() -> int:
    return int(os.environ.get(SAMPLE_ROWS_ENV, DEFAULT_SAMPLE_ROWS))


@lru_cache(maxsize=1)
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _validation_definition(entity: str, parameters: dict):
    """A GX validation definition for the entity's suite, without the load-level expectations whose
    bounds are unknown (no recent loads yet)."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = _context()
    suite_json = load_suite(entity)
    configurations = []
    for expectation in suite_json["expectations"]:
        if expectation.get("meta", {}).get("load_level") and any(
                _resolve(v, parameters) is None for v in expectation["kwargs"].values() if isinstance(v, dict)):
            continue
        configurations.append(ExpectationConfiguration(type=expectation["type"], kwargs=expectation["kwargs"],
                                                       meta=expectation.get("meta", {})))
    name = f"{entity}-{len(configurations)}"
    try:
        return context.validation_definitions.get(name)
    except Exception:  # noqa: BLE001 - GX raises its own not-found errors
        pass
    suite = context.suites.add_or_update(ExpectationSuite(name=name, expectations=[
        c.to_domain_obj() for c in configurations], meta=suite_json.get("meta", {})))
    try:
        source = context.data_sources.get("staged_loads")
    except KeyError:
        source = context.data_sources.add_pandas("staged_loads")
    asset = source.add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(name)
    return context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))


ROW_COUNT_EXPECTATION = "expect_table_row_count_to_be_between"


def _within(rows: int, kwargs: dict, parameters: dict) -> bool:
    """The row-count expectation's verdict on `rows` (its bounds, $PARAMETERs resolved)."""
    low, high = (_resolve(kwargs.get(bound), parameters) for bound in ("min_value", "max_value"))
    return (low is None or rows >= low) and (high is None or rows <= high)


def nanosecond_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its timestamp columns in nanoseconds where their values fit (years 1677-2262).
    GX compares datetime64[ns] columns with a range vectorised but any other unit value by value in
    Python (about 5 s per million rows; DuckDB hands over microseconds); a column with a value outside
    that range keeps its unit, and GX checks it the slow way, with the same result."""
    converted = {}
    for column in frame.columns:
        dtype = frame[column].dtype
        if pd.api.types.is_datetime64_dtype(dtype) and dtype != "datetime64[ns]":
            try:
                converted[column] = frame[column].astype("datetime64[ns]")
            except (OverflowError, pd.errors.OutOfBoundsDatetime):
                pass
    return frame.assign(**converted) if converted else frame


def run_suite(entity: str, frame: pd.DataFrame, parameters: dict, rows: int | None = None) -> list[CheckResult]:
    """Run the entity's suite on a DataFrame of the staged load, or a sample of it; one result per
    expectation. `rows`, the load's row count when `frame` is a sample, is what the row-count check
    measures (GX would count the sample)."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    definition = _validation_definition(entity, parameters)
    gx_parameters = {k: v for k, v in parameters.items() if v is not None}
    frame = nanosecond_timestamps(frame)
    outcome = definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=gx_parameters,
                             result_format="SUMMARY")
    checks = []
    for result in outcome.results:
        config = result.expectation_config
        meta = config.meta or {}
        exception = (result.exception_info or {}).get("exception_message") if result.exception_info else None
        observed = result.result.get("observed_value")
        unexpected = result.result.get("unexpected_count")
        success = bool(result.success)
        if config.type == ROW_COUNT_EXPECTATION and rows is not None and rows != len(frame) and not exception:
            observed, success = rows, _within(rows, config.kwargs, gx_parameters)
        checks.append(CheckResult(
            expectation=config.type,
            column=config.kwargs.get("column") or (",".join(config.kwargs["column_list"])
                                                   if config.kwargs.get("column_list") else None),
            severity=meta.get("severity", "critical"),
            success=success,
            unexpected_count=None if unexpected is None else int(unexpected),
            checked_rows=int(result.result.get("element_count") or len(frame)) if unexpected is not None else None,
            observed=exception or (None if observed is None else (f"{observed:,.4g}" if isinstance(observed, float)
                                                                  else str(observed))),
            rule=meta.get("reason", config.type),
        ))
    return checks


def write_report(reports: list[ValidationReport], directory: Path, run_label: str) -> Path:
    """The reports of one run as JSON and Markdown files; returns the Markdown path."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"validation-{run_label}"
    stem.with_suffix(".json").write_text(json.dumps([r.as_dict() for r in reports], indent=2, default=str) + "\n")
    markdown = stem.with_suffix(".md")
    markdown.write_text(reports_markdown(reports) + "\n")
    return markdown


def reports_markdown(reports: list[ValidationReport]) -> str:
    return "## Input validation\n\n" + "\n\n".join(r.to_markdown() for r in reports)
