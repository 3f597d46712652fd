"""The snapshot calendar: which training cutoffs a build has, and the strict backtest they allow.

Training cutoffs sit on a fixed grid of month ends (every `grid_months` months, counted from January),
so they do not move with the weekly scoring cutoff. A cutoff is on the calendar when the shop has at
least `min_history_days` of orders before it (earlier cutoffs see almost nothing; the feature
`observable_history_days` tells the model how much a 365-day window could see) and a label window of
some horizon fits before the scoring cutoff.

The evaluation protocol (models_ml/protocol.py) is a rolling-origin backtest, strictly out of time: at
each origin O, models are fit on the calendar cutoffs whose label window ends on or before O, and scored
on the customers known at O against what they spent in the evaluation horizon after O. When the data are
too short for that at the prediction horizon (two years of data cannot hold a 365-day training window and
a 365-day test window after a first stretch of history), the longest shorter horizon that fits is used,
and the plan says so; never an overlapping one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import pandas as pd

MIN_HISTORY_DAYS = 90
GRID_MONTHS = 1
BACKTEST_ORIGINS = 3
ORIGIN_SPACING_MONTHS = 3
SHORTER_HORIZONS = (273, 180, 91)


def month_ends(first: date, last: date, grid_months: int = GRID_MONTHS) -> list[date]:
    """Month ends in [first, last] on the fixed grid (months whose number is a multiple of grid_months,
    e.g. quarter ends for 3)."""
    ends = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="ME")
    return [d.date() for d in ends if d.month % grid_months == 0]


@dataclass
class Backtest:
    """Origins of a strict rolling-origin backtest at one evaluation horizon, and each origin's training
    cutoffs (label windows ending on or before the origin)."""

    horizon_days: int
    origins: list[str] = field(default_factory=list)
    training_cutoffs: dict[str, list[str]] = field(default_factory=dict)
    note: str = ""

    @property
    def feasible(self) -> bool:
        return bool(self.origins)


@dataclass
class SnapshotPlan:
    scoring_cutoff: str
    horizon_days: int
    training_cutoffs: list[str]
    serving_cutoffs: list[str]  # calendar cutoffs with a full prediction-horizon label: the served model's data
    backtest: Backtest
    first_order_date: str
    min_history_days: int = MIN_HISTORY_DAYS

    @property
    def label_horizons(self) -> list[int]:
        return sorted({self.horizon_days, self.backtest.horizon_days})

    def as_dict(self) -> dict:
        return {**asdict(self), "label_horizons": self.label_horizons}


def _labelled(cutoffs: list[date], horizon: int, scoring: date) -> list[date]:
    return [c for c in cutoffs if c + timedelta(days=horizon) <= scoring]


def backtest_at(cutoffs: list[date], horizon: int, scoring: date, origins_wanted: int = BACKTEST_ORIGINS,
                spacing_months: int = ORIGIN_SPACING_MONTHS, min_training_cutoffs: int = 1) -> Backtest:
    """Origins (latest first, then every `spacing_months` back) among the cutoffs labelled at `horizon`,
    each with at least `min_training_cutoffs` cutoffs whose window ends on or before it."""
    labelled = _labelled(cutoffs, horizon, scoring)
    eligible = sorted((o for o in labelled
                       if len([c for c in cutoffs if c + timedelta(days=horizon) <= o]) >= min_training_cutoffs),
                      reverse=True)
    origins: list[date] = []
    for origin in eligible:
        if origins and (origins[-1].year - origin.year) * 12 + origins[-1].month - origin.month < spacing_months:
            continue
        origins.append(origin)
        if len(origins) == origins_wanted:
            break
    origins.sort()
    return Backtest(horizon, [str(o) for o in origins],
                    {str(o): [str(c) for c in cutoffs if c + timedelta(days=horizon) <= o] for o in origins})


def plan_snapshots(first_order: date, scoring_cutoff: date, horizon_days: int = 365,
                   min_history_days: int = MIN_HISTORY_DAYS, grid_months: int = GRID_MONTHS,
                   origins_wanted: int = BACKTEST_ORIGINS, spacing_months: int = ORIGIN_SPACING_MONTHS,
                   max_training_cutoffs: int | None = None) -> SnapshotPlan:
    """The calendar cutoffs of a build and the strict backtest they allow (see the module docstring)."""
    first_order, scoring_cutoff = pd.Timestamp(first_order).date(), pd.Timestamp(scoring_cutoff).date()
    candidates = month_ends(first_order + timedelta(days=min_history_days), scoring_cutoff, grid_months)
    horizons = [horizon_days, *[h for h in SHORTER_HORIZONS if h < horizon_days]]
    if max_training_cutoffs:  # benchmarks: only the latest few cutoffs
        candidates = _labelled(candidates, horizon_days, scoring_cutoff)[-max_training_cutoffs:]
    # the longest horizon with all the origins wanted, spaced `spacing_months` apart (seasons differ);
    # closer spacings only when no horizon allows that; else the horizon with the most origins
    backtest = None
    for spacing in range(spacing_months, 0, -1):
        for h in horizons:
            trial = backtest_at(candidates, h, scoring_cutoff, origins_wanted, spacing)
            if backtest is None or len(trial.origins) > len(backtest.origins):
                backtest = trial
            if len(trial.origins) >= origins_wanted:
                break
        if len(backtest.origins) >= origins_wanted:
            break
    if backtest.horizon_days != horizon_days and backtest.feasible:
        backtest.note = (f"the data ({first_order} to {scoring_cutoff}) are too short for a strict backtest at "
                         f"{horizon_days} days; models are compared at {backtest.horizon_days} days, strictly out of time")
    elif not backtest.feasible:
        backtest.horizon_days = horizon_days
        backtest.note = (f"the data ({first_order} to {scoring_cutoff}) are too short for any strict backtest: "
                         "no origin has a labelled training cutoff before it")
    needed = _labelled(candidates, min(horizon_days, backtest.horizon_days), scoring_cutoff)
    serving = _labelled(needed, horizon_days, scoring_cutoff)
    return SnapshotPlan(str(scoring_cutoff), horizon_days, [str(c) for c in needed], [str(c) for c in serving],
                        backtest, str(first_order), min_history_days)


# The order lines that count now, by staging's rule (stg_shop__orders, valid_to = end of time): lines with a
# customer, not deleted; of a line the source identifies (line_id), its newest version, unless a version
# deleted it. The default scoring cutoff is the last of their order dates, computed here only and handed to
# dbt (var cutoff_date), so a deleted or corrected last line moves the calendar and the build alike.
CURRENT_ORDER_DATES_SQL = """
with versions as (
    select
        cast(order_ts as date) as order_date,
        line_id,
        deleted_at,
        row_number() over (partition by line_id
                           order by loaded_at desc, coalesce(updated_at, loaded_at) desc, row_key desc) as newest_first,
        count(deleted_at) over (partition by line_id) as tombstones
    from raw.orders
    where customer_id is not null
)
select min(order_date) as first_day, max(order_date) as last_day
from versions
where (line_id is null and deleted_at is null) or (line_id is not null and newest_first = 1 and tombstones = 0)
"""


def order_date_bounds(reader) -> tuple[date | None, date | None]:
    """First and last order date of the order lines that count now (CURRENT_ORDER_DATES_SQL)."""
    row = reader.frame(CURRENT_ORDER_DATES_SQL).iloc[0]
    if row["first_day"] is None or pd.isna(row["first_day"]):
        return None, None
    return pd.Timestamp(row["first_day"]).date(), pd.Timestamp(row["last_day"]).date()


# A scoring cutoff may lie a few days past the last landed order (a quiet weekend); further on, every
# customer would look silent for days the data do not cover, and the scores collapse.
MAX_DAYS_PAST_LAST_ORDER = 7


class CutoffError(ValueError):
    """The scoring cutoff does not fit the calendar or the landed orders."""


def check_cutoff(cutoff: date, first: date, last: date, today: date | None = None) -> None:
    """Refuse a cutoff in the future, before the first landed order, or more than
    MAX_DAYS_PAST_LAST_ORDER days after the last one."""
    today = today or pd.Timestamp.now(tz="UTC").date()
    if cutoff > today:
        raise CutoffError(f"scoring cutoff {cutoff} is in the future (today is {today}): its orders have not "
                          "happened yet; give a cutoff up to today")
    if cutoff < first:
        raise CutoffError(f"scoring cutoff {cutoff} is before the first landed order ({first}): nobody is a "
                          "customer yet; give a later cutoff")
    if (cutoff - last).days > MAX_DAYS_PAST_LAST_ORDER:
        raise CutoffError(f"scoring cutoff {cutoff} is {(cutoff - last).days} days after the last landed order "
                          f"({last}): every customer would look silent for days the data do not cover; give a "
                          f"cutoff up to {last + timedelta(days=MAX_DAYS_PAST_LAST_ORDER)}, or land the missing "
                          "orders first")


def plan_for_warehouse(reader, cutoff=None, horizon_days: int = 365, **options) -> SnapshotPlan:
    """The snapshot plan of a build on the landed data: scoring cutoff = `cutoff` (checked against the
    landed orders, `check_cutoff`) or the last order date."""
    first, last = order_date_bounds(reader)
    if first is None:
        raise LookupError("raw.orders holds no order with a customer id: land orders before building features")
    scoring = pd.Timestamp(cutoff).date() if cutoff else last
    if cutoff:
        check_cutoff(scoring, first, last)
    return plan_snapshots(first, scoring, horizon_days, **options)


def validation_backtest(plan: SnapshotPlan, origins_wanted: int = BACKTEST_ORIGINS,
                        spacing_months: int = ORIGIN_SPACING_MONTHS) -> Backtest:
    """A backtest whose origins and label windows all end on or before the plan's first test origin, at
    the plan's evaluation horizon: where tuning may look without seeing the test windows."""
    if not plan.backtest.feasible:
        return Backtest(plan.backtest.horizon_days, note=plan.backtest.note)
    first_test = pd.Timestamp(plan.backtest.origins[0]).date()
    cutoffs = [pd.Timestamp(c).date() for c in plan.training_cutoffs]
    best = Backtest(plan.backtest.horizon_days)
    for spacing in range(spacing_months, 0, -1):
        trial = backtest_at(cutoffs, plan.backtest.horizon_days, first_test, origins_wanted, spacing)
        if len(trial.origins) > len(best.origins):
            best = trial
        if len(best.origins) >= origins_wanted:
            break
    if not best.feasible:
        best.note = (f"no origin with a labelled training cutoff ends by the first test origin {first_test} at "
                     f"{plan.backtest.horizon_days} days: too little data to tune without seeing the test windows")
    return best
