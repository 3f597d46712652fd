"""One business time zone for every timestamp the platform stores (`CLV_TIMEZONE`, default UTC).

Landing converts each input timestamp to wall-clock time in that zone and stores it without a zone:
- a timestamp with an offset or a zone (an ISO string ending in Z or +05:00, a zone name after the time
  such as `America/New_York`, `UTC`, `EST` or `GMT+2`, a TIMESTAMPTZ parquet column) is the instant it
  names, converted to the business zone (daylight saving time included); an unknown zone name makes the
  value invalid (quarantined), never a time read without its zone;
- a timestamp without one is taken as already in the business zone and kept as it is.
A cutoff date therefore means the end of that day in the business zone, and no result depends on the time
zone of the machine or of the database session.
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIMEZONE_ENV = "CLV_TIMEZONE"
DEFAULT_TIMEZONE = "UTC"

# An ISO time of day followed by Z or a numeric offset: 10:00Z, 10:00:00+05:00, 10:00:00.5-0500, 10:00+05
_OFFSET_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
# A time of day followed by a zone name: IANA (America/New_York) or an abbreviation ICU knows (UTC, EST,
# CET, GMT+2); an unknown name does not parse, and the row is quarantined rather than read as local time
# (DuckDB's plain timestamp cast would drop the name without a word).
_ZONE_NAME_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s+[A-Za-z][A-Za-z0-9_/+-]*$"
# A 12-hour time (02:01:48 PM): DuckDB's cast would take PM for a zone and drop it; read with these formats
_MERIDIEM_PATTERN = r"\d{2}:\d{2}(:\d{2})?\s*[AaPp][Mm]$"
_MERIDIEM_FORMATS = ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %I:%M %p", "%Y-%m-%dT%I:%M:%S %p", "%Y-%m-%d %I:%M:%S%p",
                     "%Y-%m-%d %I:%M%p")


def business_timezone() -> str:
    """The IANA name of the business time zone; a clear error for an unknown name."""
    name = os.environ.get(TIMEZONE_ENV, "").strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{TIMEZONE_ENV}={name!r} is not a known IANA time zone "
                         "(examples: UTC, Europe/London, America/New_York)") from exc
    return name


def timestamp_sql(raw: str, raw_type: str, zone: str | None = None) -> str:
    """DuckDB expression turning the input expression `raw` (of DuckDB type `raw_type`) into a TIMESTAMP in
    business time, NULL when it does not parse (the caller quarantines such rows)."""
    zone = (zone or business_timezone()).replace("'", "")
    kind = raw_type.upper()
    if "WITH TIME ZONE" in kind or kind.startswith("TIMESTAMPTZ"):  # TIMESTAMPTZ, TIMESTAMPTZ_NS, ...
        return f"timezone('{zone}', {raw})"
    if kind == "VARCHAR":
        text = f"trim({raw})"
        formats = ", ".join(f"'{f}'" for f in _MERIDIEM_FORMATS)
        return (f"(case when regexp_matches({text}, '{_MERIDIEM_PATTERN}') then try_strptime({text}, [{formats}]) "
                f"when regexp_matches({text}, '{_OFFSET_PATTERN}') or regexp_matches({text}, '{_ZONE_NAME_PATTERN}') "
                f"then timezone('{zone}', try_cast({text} as timestamptz)) "
                f"else try_cast({text} as timestamp) end)")
    return f"try_cast({raw} as TIMESTAMP)"
