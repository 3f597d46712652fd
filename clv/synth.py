"""A synthetic shop: customers, orders and web events from a documented latent process.

Per customer i (all draws seeded, vectorised, written in blocks of customers so memory stays bounded):

- acquisition channel and country from fixed shares; sign-up day uniform over the period;
- purchase rate lambda_i ~ Gamma(r=0.9, scale=1/alpha) per day (alpha = 40), times a channel multiplier;
- dropout: after each purchase the customer leaves with probability p_i ~ Beta(a=1.2, b=6) (BG/NBD);
- first purchase on the sign-up day, later ones at Exp(lambda_i) gaps until dropout or the period end;
- order value ~ Gamma(shape=4, scale=nu_i / 4) with nu_i ~ Gamma(shape=3, scale=20) (Gamma-Gamma),
  split over 1 + Poisson(1.5) lines of Zipf-popular products; 4% of orders have a partial return
  within 30 days (negative quantity, order id prefixed R);
- web sessions: one per purchase plus browsing sessions at rate 1.0 x lambda_i (+0.003/day) while
  active; each session has a session_start, 1 + Poisson(1.0) page views, add-to-cart events
  (Poisson(0.4) when browsing, 1 + Poisson(0.5) before a purchase) and a purchase event when it bought.

So frequency, spend and browsing all share the latent lambda_i and activity: behavioural features
carry signal about future value. `shift_day` with `shift_rate`/`shift_value` makes a shop that changes from
a given day (purchase rate or order values multiplied), for drift tests. PII columns (email, name) are fake and exist to test PII handling.

Shops unlike the stationary default (all off by default; `clv synth --shop seasonal-growing` sets them as
a real shop has them):

- `season_amplitude` A: purchases and browsing run (1 + A) times faster from 1 November to 31 December
  than the rest of the year (normalised so a whole year holds the same expected purchases). The process
  runs on a seasonal clock S(t) = integral of the seasonal factor: gaps are drawn on that clock and mapped
  back to calendar days, so the BG/NBD structure holds exactly on the clock;
- `surge_share` of customers sign up in the last `surge_days` days (a recent acquisition push: a growing,
  young customer base), the rest uniformly over the period;
- `tracked_share` of customers have their browsing tracked; the others leave no web events at all.

`future_days` simulates the same customers on past the period: their later orders are written apart
(future_orders.parquet), so published scores can be checked against what the customers then spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

CHANNELS = np.array(["organic", "paid_search", "social", "email", "referral"])
CHANNEL_SHARES = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
CHANNEL_RATE_MULTIPLIER = np.array([1.0, 0.8, 0.6, 1.3, 1.2])
COUNTRIES = np.array(["United Kingdom", "Germany", "France", "Netherlands", "Spain", "United States"])
COUNTRY_SHARES = np.array([0.5, 0.15, 0.12, 0.08, 0.08, 0.07])
FIRST_NAMES = np.array(["Alex", "Sam", "Maria", "John", "Aisha", "Wei", "Olga", "Pedro", "Lena", "Tom"])
LAST_NAMES = np.array(["Smith", "Jones", "Garcia", "Muller", "Chen", "Khan", "Rossi", "Novak", "Brown", "Lee"])
N_PRODUCTS = 2000
BLOCK = 100_000


@dataclass
class SynthConfig:
    customers: int
    seed: int = 7
    start: date = date(2023, 1, 1)
    days: int = 730
    # Multiplies every purchase rate: >1 makes a "shifted" population for drift demos.
    rate_multiplier: float = 1.0
    # A shop that changes: from day `shift_day` of the period on, purchase rates are multiplied by
    # `shift_rate` and order values by `shift_value` (None: no change).
    shift_day: int | None = None
    shift_rate: float = 1.0
    shift_value: float = 1.0
    # A seasonal, growing shop with partly untracked browsing (see the module docstring).
    season_amplitude: float = 0.0
    surge_share: float = 0.0
    surge_days: int = 180
    tracked_share: float = 1.0
    # Days simulated after the period for the customers acquired in it: their orders then go to
    # future_orders.parquet (what they really spent after the last observed day: the truth to score against).
    future_days: int = 0


SHOP_PROFILES = {
    "stationary": {},
    # the shop of issue 33: a sharp November-December peak, 40% of customers acquired in the last six
    # months (a fifth of them in a surge, the rest of that share from steady acquisition), browsing seen
    # for three quarters of them, two years of history
    "seasonal-growing": {"season_amplitude": 2.0, "surge_share": 0.2, "surge_days": 182, "tracked_share": 0.75,
                         "days": 730},
}


def season_factor(day_of_period: np.ndarray, start: date, amplitude: float) -> np.ndarray:
    """The seasonal factor of each (integer) day of the period: 1 + A in November and December, 1
    otherwise, divided by the year's mean so a whole year keeps the stationary shop's expected purchases."""
    if amplitude == 0:
        return np.ones(len(day_of_period))
    days = np.datetime64(start.isoformat(), "D") + np.asarray(day_of_period, np.int64).astype("timedelta64[D]")
    month = (days.astype("datetime64[M]").astype(np.int64) % 12) + 1
    peak = (month >= 11).astype(float)
    return (1 + amplitude * peak) / (1 + amplitude * 61 / 365)


class SeasonalClock:
    """S(t): the seasonal clock, in stationary days, at calendar time t (fractional days since the period
    start), and its inverse; piecewise linear on whole days (the factor is constant within a day)."""

    def __init__(self, start: date, days: int, amplitude: float):
        self.amplitude = amplitude
        grid_days = days + 800  # room for label windows after the period (oracles look up to two years ahead)
        self.grid = np.arange(grid_days + 1, dtype=float)
        factor = season_factor(np.arange(grid_days), start, amplitude)
        self.clock = np.concatenate([[0.0], np.cumsum(factor)])

    def at(self, t):
        return np.asarray(t, float) if self.amplitude == 0 else np.interp(t, self.grid, self.clock)

    def inverse(self, s):
        return np.asarray(s, float) if self.amplitude == 0 else np.interp(s, self.clock, self.grid)


def _customers_block(rng, ids: np.ndarray, cfg: SynthConfig) -> dict[str, np.ndarray]:
    n = len(ids)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_SHARES)
    signup_day = rng.integers(0, cfg.days, n)
    if cfg.surge_share > 0:  # drawn only for a surging shop, so the default shops stay as they were
        surge_days = min(cfg.surge_days, cfg.days)
        recent = rng.random(n) < cfg.surge_share
        signup_day = np.where(recent, cfg.days - surge_days + rng.integers(0, surge_days, n), signup_day)
    rate = rng.gamma(0.9, 1 / 40, n) * CHANNEL_RATE_MULTIPLIER[channel] * cfg.rate_multiplier
    return {
        "customer_id": ids,
        "channel": channel,
        "country": rng.choice(len(COUNTRIES), n, p=COUNTRY_SHARES),
        "signup_day": signup_day,
        "signup_second": rng.integers(8 * 3600, 22 * 3600, n),
        "rate": rate,
        "dropout": rng.beta(1.2, 6, n),
        "spend_mean": rng.gamma(3, 20, n),
    }


def _latent_block(c: dict, purchases_before_dropout: np.ndarray) -> dict[str, np.ndarray]:
    return {"customer_id": c["customer_id"].astype(str), "rate": c["rate"], "dropout": c["dropout"],
            "spend_mean": c["spend_mean"], "purchases_before_dropout": purchases_before_dropout}


def _purchase_times(rng, c: dict, days: int, shift_day: int | None = None,
                    shift_rate: float = 1.0, clock: SeasonalClock | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Purchase times (fractional days since the period start) per customer: (owner index, time, end of
    activity per customer). Gaps are drawn on the seasonal clock (`SeasonalClock`; none: calendar days).
    From `shift_day` on the purchase rate is `shift_rate` times higher: the process is time-warped after
    that day (a Poisson process compressed by k has k times the rate)."""
    remaining = days - c["signup_day"]
    purchases_before_dropout = rng.geometric(c["dropout"])  # first purchase included
    peak = 1.0 if clock is None or not clock.amplitude else float(season_factor(np.arange(366), date(2001, 1, 1), clock.amplitude).max())
    cap = np.ceil(c["rate"] * remaining * 3 * max(shift_rate, 1.0) * peak + 5).astype(np.int64)
    n_repeat = np.minimum(purchases_before_dropout - 1, cap)
    owner = np.repeat(np.arange(len(remaining)), n_repeat)
    gaps = rng.exponential(1 / np.maximum(c["rate"][owner], 1e-9))
    # cumulative gap per customer: cumsum over all, minus the cumsum at each customer's start
    cumulative = np.cumsum(gaps)
    starts = np.repeat(np.cumsum(n_repeat) - n_repeat, n_repeat)
    offsets = cumulative - np.concatenate([[0.0], cumulative])[starts]
    times = c["signup_day"][owner] + c["signup_second"][owner] / 86400 + offsets
    if clock is not None and clock.amplitude:
        signed_up = (c["signup_day"] + c["signup_second"] / 86400)[owner]
        times = clock.inverse(clock.at(signed_up) + offsets)
    if shift_day is not None and shift_rate != 1.0:
        start = np.maximum(float(shift_day), (c["signup_day"] + c["signup_second"] / 86400)[owner])
        times = np.where(times > start, start + (times - start) / shift_rate, times)
    keep = times < days
    first = c["signup_day"] + c["signup_second"] / 86400
    all_owner = np.concatenate([np.arange(len(remaining)), owner[keep]])
    all_times = np.concatenate([first, times[keep]])
    order = np.lexsort((all_times, all_owner))
    last_purchase = np.maximum.reduceat(all_times[order], np.searchsorted(all_owner[order], np.arange(len(remaining))))
    # active until the purchase after which they dropped out, or the period end if that lies beyond it
    kept_repeats = np.bincount(owner[keep], minlength=len(remaining))
    active_until = np.where(kept_repeats + 1 < purchases_before_dropout, days, last_purchase)
    c["purchases_before_dropout"] = purchases_before_dropout
    return all_owner[order], all_times[order], np.minimum(active_until, days)


def _orders_block(rng, c: dict, owner: np.ndarray, times: np.ndarray, start_ts: np.datetime64,
                  days: int, first_order_no: int, shift_day: int | None = None,
                  shift_value: float = 1.0) -> dict[str, np.ndarray]:
    n_orders = len(owner)
    order_no = first_order_no + np.arange(n_orders)
    value = rng.gamma(4, c["spend_mean"][owner] / 4)
    if shift_day is not None:
        value = value * np.where(times >= shift_day, shift_value, 1.0)
    n_lines = 1 + rng.poisson(1.5, n_orders)
    line_order = np.repeat(np.arange(n_orders), n_lines)
    product = np.minimum(rng.zipf(1.3, len(line_order)), N_PRODUCTS) - 1
    quantity = 1 + rng.poisson(1.0, len(line_order))
    weight = rng.uniform(0.5, 1.5, len(line_order))
    weight_sum = np.bincount(line_order, weights=weight)
    unit_price = np.round(value[line_order] * weight / weight_sum[line_order] / quantity, 2)
    order_ts = start_ts + (times[line_order] * 86400).astype("timedelta64[s]")
    # partial returns: one line of 4% of orders, returned 1-30 days later
    returned = rng.random(n_orders) < 0.04
    first_line = np.cumsum(n_lines) - n_lines
    r_lines = first_line[returned]
    r_ts = order_ts[r_lines] + rng.integers(1, 31, len(r_lines)).astype("timedelta64[D]")
    in_period = r_ts < start_ts + np.timedelta64(days, "D")
    returned[returned] = in_period
    r_lines, r_ts = r_lines[in_period], r_ts[in_period]
    ids = np.char.add("O", order_no.astype(str))
    return {
        "customer_id": np.concatenate([c["customer_id"][owner][line_order], c["customer_id"][owner][returned]]),
        "order_id": np.concatenate([ids[line_order], np.char.add("R", order_no[returned].astype(str))]),
        "order_ts": np.concatenate([order_ts, r_ts]),
        "product_id": np.concatenate([product, product[r_lines]]).astype(str),
        "quantity": np.concatenate([quantity, -quantity[r_lines]]).astype(np.int64),
        "unit_price": np.concatenate([unit_price, unit_price[r_lines]]),
    }


def _events_block(rng, c: dict, owner: np.ndarray, times: np.ndarray, active_until: np.ndarray,
                  start_ts: np.datetime64, first_session_no: int, clock: SeasonalClock | None = None,
                  tracked_share: float = 1.0) -> dict[str, np.ndarray]:
    n = len(c["customer_id"])
    signup = c["signup_day"] + c["signup_second"] / 86400
    seasonal = clock is not None and clock.amplitude
    start_clock = clock.at(signup) if seasonal else signup
    active_days = np.maximum((clock.at(active_until) if seasonal else active_until) - start_clock, 0)
    n_browse = rng.poisson((1.0 * c["rate"] + 0.003) * active_days)
    b_owner = np.repeat(np.arange(n), n_browse)
    b_times = start_clock[b_owner] + rng.random(len(b_owner)) * active_days[b_owner]
    if seasonal:
        b_times = clock.inverse(b_times)
    if tracked_share < 1:  # untracked customers leave no web events (drawn only then: default shops unchanged)
        tracked = rng.random(n) < tracked_share
        c["tracked"] = tracked
        owner, times = owner[tracked[owner]], times[tracked[owner]]
        b_owner, b_times = b_owner[tracked[b_owner]], b_times[tracked[b_owner]]
    s_owner = np.concatenate([owner, b_owner])
    s_time = np.concatenate([times - rng.uniform(0.001, 0.02, len(owner)), b_times])
    s_time = np.maximum(s_time, 0)
    bought = np.concatenate([np.ones(len(owner), bool), np.zeros(len(b_owner), bool)])
    n_sessions = len(s_owner)
    duration = np.round(rng.gamma(2, 150, n_sessions) * np.where(bought, 1.8, 1.0), 1)
    n_views = 1 + rng.poisson(1.0, n_sessions)
    n_carts = np.where(bought, 1 + rng.poisson(0.5, n_sessions), rng.poisson(0.4, n_sessions))
    n_events = 1 + n_views + n_carts + bought
    e_session = np.repeat(np.arange(n_sessions), n_events)
    position = np.arange(len(e_session)) - np.repeat(np.cumsum(n_events) - n_events, n_events)
    kind = np.select(
        [position == 0, position <= n_views[e_session], position <= (n_views + n_carts)[e_session]],
        [0, 1, 2], default=3,
    )
    offset_s = position * duration[e_session] / n_events[e_session]
    event_ts = start_ts + (s_time[e_session] * 86400 + offset_s).astype("timedelta64[s]")
    return {
        "customer_id": c["customer_id"][s_owner][e_session],
        "session_id": (first_session_no + e_session).astype(np.int64),
        "event_ts": event_ts,
        "event_type": kind.astype(np.int8),
        "session_duration_s": duration[e_session],
    }


EVENT_TYPES = pa.array(["session_start", "page_view", "add_to_cart", "purchase"])


def write_synthetic(cfg: SynthConfig, out_dir: Path, latent: bool = False) -> dict[str, Path]:
    """Write customers.parquet, orders.parquet and events.parquet to out_dir; return their paths. With
    `latent`, also latent.parquet: each customer's true purchase rate, dropout probability, mean order value
    and number of purchases before dropping out (what the oracle of `clv bench accuracy` knows)."""
    if cfg.customers < 1:
        raise ValueError("--customers must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ("customers", "orders", "events", *(["latent"] if latent else []), *(["future_orders"] if cfg.future_days else []))
    paths = {name: out_dir / f"{name}.parquet" for name in names}
    rng = np.random.default_rng(cfg.seed)
    start_ts = np.datetime64(cfg.start.isoformat(), "s")
    simulated = cfg.days + cfg.future_days
    clock = SeasonalClock(cfg.start, simulated, cfg.season_amplitude) if cfg.season_amplitude else None
    period_end = start_ts + np.timedelta64(cfg.days, "D")
    writers: dict[str, pq.ParquetWriter] = {}
    order_no, session_no = 100000, 1
    try:
        for block_start in range(0, cfg.customers, BLOCK):
            ids = np.arange(block_start, min(block_start + BLOCK, cfg.customers), dtype=np.int64) + 1
            c = _customers_block(rng, ids, cfg)
            owner, times, active_until = _purchase_times(rng, c, simulated, cfg.shift_day, cfg.shift_rate, clock)
            orders = _orders_block(rng, c, owner, times, start_ts, simulated, order_no, cfg.shift_day, cfg.shift_value)
            events = _events_block(rng, c, owner, times, active_until, start_ts, session_no, clock, cfg.tracked_share)
            order_no += len(owner)
            session_no += int(events["session_id"].max(initial=session_no - 1) - session_no + 1)
            first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), len(ids))]
            last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), len(ids))]
            tables = {
                "customers": pa.table({
                    "customer_id": pa.array(ids.astype(str)),
                    "signup_ts": pa.array(start_ts + (c["signup_day"] * 86400 + c["signup_second"]).astype("timedelta64[s]")),
                    "country": pa.array(COUNTRIES[c["country"]]),
                    "acquisition_channel": pa.array(CHANNELS[c["channel"]]),
                    "email": pa.array(np.char.add(np.char.add("customer", ids.astype(str)), "@example.com")),
                    "name": pa.array(np.char.add(np.char.add(first, " "), last)),
                }),
                "orders": pa.table({
                    "customer_id": pa.array(orders["customer_id"].astype(str)),
                    "order_id": pa.array(orders["order_id"]),
                    "order_ts": pa.array(orders["order_ts"]),
                    "product_id": pa.array(orders["product_id"]),
                    "quantity": pa.array(orders["quantity"]),
                    "unit_price": pa.array(orders["unit_price"]),
                }),
                "events": pa.table({
                    "customer_id": pa.array(events["customer_id"].astype(str)),
                    "session_id": pa.array(events["session_id"].astype(str)),
                    "event_ts": pa.array(events["event_ts"]),
                    "event_type": pa.DictionaryArray.from_arrays(pa.array(events["event_type"]), EVENT_TYPES),
                    "session_duration_s": pa.array(events["session_duration_s"]),
                }),
            }
            if latent:
                tables["latent"] = pa.table(_latent_block(c, c["purchases_before_dropout"]))
            if cfg.future_days:  # what happened after the period stays out of the shop's exports
                observed = pa.array(orders["order_ts"] < period_end)
                tables["future_orders"] = tables["orders"].filter(pa.compute.invert(observed))
                tables["orders"] = tables["orders"].filter(observed)
                tables["events"] = tables["events"].filter(pa.array(events["event_ts"] < period_end))
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema, compression="zstd")
                writers[name].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    return paths


RETURNED_SHARE = 0.04 * (1 - np.exp(-1.5)) / 1.5  # 4% of orders return one line; E[1/(1+Poisson(1.5))]


def oracle_expected_revenue(latent, orders, customer_ids, cutoff, horizon_days: int, start: date = date(2023, 1, 1),
                            shift_day: int | None = None, shift_rate: float = 1.0, shift_value: float = 1.0,
                            season_amplitude: float = 0.0):
    """Expected net revenue in (cutoff, cutoff + horizon] given each customer's true latent state: alive at
    the cutoff (fewer purchases so far than the purchases before dropout), rate lambda, dropout p and mean
    order value nu. For an alive BG/NBD customer E[purchases in t] = (1 - exp(-lambda p t)) / p, with t the
    horizon measured on the seasonal clock; times nu, less the expected returns. The best any model can do on
    average (the bench's ceiling)."""
    import pandas as pd

    latent = latent.set_index("customer_id")
    cutoff_ts = pd.Timestamp(cutoff) + pd.Timedelta(days=1)
    purchases = orders[(orders["quantity"] > 0) & (orders["order_ts"] < cutoff_ts)]
    made = purchases.groupby("customer_id")["order_id"].nunique()
    ids = pd.Index(pd.Series(customer_ids).astype(str))
    state = latent.reindex(ids)
    alive = made.reindex(ids).fillna(0).to_numpy() < state["purchases_before_dropout"].to_numpy()
    rate, p, nu = (state[c].to_numpy(float) for c in ("rate", "dropout", "spend_mean"))
    if shift_day is not None:
        after = (cutoff_ts - pd.Timestamp(start)).days >= shift_day
        rate, nu = rate * (shift_rate if after else 1.0), nu * (shift_value if after else 1.0)
    day = (cutoff_ts - pd.Timestamp(start)).days
    clock = SeasonalClock(start, day + horizon_days, season_amplitude)
    span = float(clock.at(day + horizon_days) - clock.at(day))
    expected_orders = (1 - np.exp(-rate * p * span)) / p
    return np.where(alive, expected_orders * nu * (1 - RETURNED_SHARE), 0.0)


def bayes_ceiling_expected_revenue(orders, events, customers, customer_ids, cutoff, horizon_days: int,
                                   draws: int = 4000, seed: int = 0, start: date = date(2023, 1, 1),
                                   season_amplitude: float = 0.0):
    """Expected net revenue in (cutoff, cutoff + horizon] given only what is observable at the cutoff, with
    the generator's true population distributions as priors: the Bayes-optimal prediction, the best any model
    can do from the data (the oracle above also knows who is still alive). Monte Carlo over prior draws of
    (lambda, p, nu), each weighted by the likelihood of the customer's purchases (count, first and last
    time), order values and browsing sessions (count; one after the last purchase proves the customer alive),
    summed over alive and dropped-out. Times are read on the shop's seasonal clock (the factor's Jacobian
    is the same for every draw, so it cancels); a customer with no web event at all is untracked, and their
    browsing says nothing. For a shop without `shift_day`."""
    import pandas as pd
    from scipy.special import logsumexp

    rng = np.random.default_rng(seed)
    lam0, p, nu = rng.gamma(0.9, 1 / 40, draws), rng.beta(1.2, 6, draws), rng.gamma(3, 20, draws)
    cutoff_ts = pd.Timestamp(cutoff) + pd.Timedelta(days=1)
    ids = pd.Index(pd.Series(customer_ids).astype(str))
    lines = orders[(orders["quantity"] > 0) & (orders["order_ts"] < cutoff_ts)]
    per_order = (lines.assign(value=lines["quantity"] * lines["unit_price"], customer_id=lines["customer_id"].astype(str))
                 .groupby(["customer_id", "order_id"]).agg(ts=("order_ts", "min"), value=("value", "sum")))
    by_customer = per_order.groupby("customer_id")
    first, last = by_customer["ts"].min().reindex(ids), by_customer["ts"].max().reindex(ids)
    n_orders = by_customer.size().reindex(ids).fillna(0).to_numpy(float)
    value_sum = by_customer["value"].sum().reindex(ids).fillna(0).to_numpy(float)
    seen = events[events["event_ts"] < cutoff_ts].assign(customer_id=lambda d: d["customer_id"].astype(str))
    sessions = seen.groupby(["customer_id", "session_id"]).agg(
        ts=("event_ts", "min"), bought=("event_type", lambda s: (s.astype(str) == "purchase").any())).reset_index()
    browsing = sessions[~sessions["bought"]].merge(last.rename("last_purchase"), left_on="customer_id", right_index=True)
    n_browse = browsing.groupby("customer_id").size().reindex(ids).fillna(0).to_numpy(float)
    browsed_after = (browsing[browsing["ts"] > browsing["last_purchase"]].groupby("customer_id").size()
                     .reindex(ids).fillna(0).to_numpy() > 0)
    multiplier = (customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")
                  ["acquisition_channel"].map(dict(zip(CHANNELS, CHANNEL_RATE_MULTIPLIER))).reindex(ids).to_numpy(float))

    tracked = (seen.groupby("customer_id").size().reindex(ids).fillna(0).to_numpy() > 0).astype(float)
    origin = pd.Timestamp(start)
    day = (cutoff_ts - origin).days
    clock = SeasonalClock(start, day + horizon_days, season_amplitude)

    def on_clock(ts):
        return clock.at(((ts - origin).dt.total_seconds() / 86400).to_numpy(float))

    t_first, t_last, t_cut = on_clock(first), on_clock(last), float(clock.at(day))
    horizon = float(clock.at(day + horizon_days)) - t_cut
    repeats, active_span, since_first, since_last = n_orders - 1, t_last - t_first, t_cut - t_first, t_cut - t_last
    expected = np.zeros(len(ids))
    for start in range(0, len(ids), 500):
        s = slice(start, start + 500)
        lam = lam0[None, :] * multiplier[s, None]
        browse_rate = lam + 0.003  # browsing sessions while active (see _events_block)
        common = (repeats[s, None] * (np.log(lam) + np.log1p(-p)) - lam * active_span[s, None]
                  + n_browse[s, None] * np.log(browse_rate)
                  - n_orders[s, None] * 4 * np.log(nu / 4) - 4 * value_sum[s, None] / nu)
        seen_browsing = tracked[s, None] * browse_rate  # untracked: browsing unobserved, no term
        alive = common + np.log1p(-p) - lam * since_last[s, None] - seen_browsing * since_first[s, None]
        dropped = np.where(browsed_after[s, None], -np.inf, common + np.log(p) - seen_browsing * active_span[s, None])
        value = (1 - np.exp(-lam * p * horizon)) / p * nu * (1 - RETURNED_SHARE)
        log_weight = alive - logsumexp(np.stack([alive, dropped]), axis=(0, 2))[:, None]
        expected[s] = np.exp(logsumexp(log_weight, b=value, axis=1))
    return expected
