"""How much in total: the next-horizon revenue of all scored customers, and of each tier, country and
channel, with an 80% interval.

Customers are not independent draws of one model: a whole season can come in above or below what the
model expected. So the interval is built from whole cutoffs, not from customers: at every backtest origin
the scope's realised total is compared with its predicted total, and the spread of log(actual / predicted)
across origins (less the part the customers' own randomness explains) is the origin-level error. The
interval for a new cutoff is the predicted total, moved by the scope's mean log ratio, with the
origin-level error (Student t over the origins, as a prediction for a new origin) and the sampling noise
of the new total (each customer's variance from models_ml/spread.py) added.

`backtest_forecast` checks it the strict way: each origin's interval is built from the other origins only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from models_ml import spread as spreads
from models_ml.scoring import assign_tiers

SCOPE_COLUMNS = {"tier": "clv_tier", "country": "country", "channel": "acquisition_channel"}
LEVEL = 0.8
_VARIANCE_LEVELS = (np.arange(spreads.ENSEMBLE_MEMBERS) + 0.5) / spreads.ENSEMBLE_MEMBERS


def customer_variance(spread: spreads.Spread, predicted) -> np.ndarray:
    """Each customer's variance of revenue under their predictive distribution (a quantile ensemble)."""
    return spreads.quantiles_of(spread, predicted, _VARIANCE_LEVELS).var(axis=1)


def scopes(frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(scope, value, row mask): the whole base, then each tier, country and channel in `frame`."""
    out = [("all", "all", np.ones(len(frame), bool))]
    for scope, column in SCOPE_COLUMNS.items():
        if column in frame:
            values = frame[column].fillna("unknown").astype(str).to_numpy()
            out += [(scope, str(v), values == v) for v in sorted(pd.unique(values))]
    return out


def origin_totals(rows: pd.DataFrame, predicted, spread: spreads.Spread, tier_shares=(0.2, 0.3)) -> list[dict]:
    """Per backtest origin and scope: predicted and actual totals and the predicted total's sampling
    variance. `rows`: origin, actual and the slice columns; tiers are each origin's own."""
    predicted = np.asarray(predicted, float)
    out = []
    for origin in pd.unique(rows["origin"]):
        here = (rows["origin"] == origin).to_numpy()
        frame = rows[here].assign(clv_tier=assign_tiers(predicted[here], *tier_shares))
        variance = customer_variance(spread, predicted[here])
        for scope, value, mask in scopes(frame):
            out.append({"origin": str(origin), "scope": scope, "scope_value": value,
                        "predicted": float(predicted[here][mask].sum()), "actual": float(frame["actual"].to_numpy()[mask].sum()),
                        "variance": float(variance[mask].sum()), "customers": int(mask.sum())})
    return out


def interval(total: float, variance: float, history: list[dict], level: float = LEVEL) -> tuple[float, float, str]:
    """(low, high, note) of a scope's total from its origins' records (`origin_totals` rows)."""
    usable = [h for h in history if h["predicted"] > 0 and h["actual"] > 0]
    if total <= 0:
        return 0.0, 0.0, "nothing predicted"
    sampling_now = variance / total**2
    if not usable:
        z = stats.norm.ppf(0.5 + level / 2)
        s = np.sqrt(sampling_now)
        return float(total * np.exp(-z * s)), float(total * np.exp(z * s)), "no origin to learn from: sampling noise only"
    ratios = np.log([h["actual"] / h["predicted"] for h in usable])
    sampling = np.array([h["variance"] / h["predicted"] ** 2 for h in usable])
    k = len(usable)
    shift = float(ratios.mean())
    between = max(float(ratios.var(ddof=1)) - float(sampling.mean()), 0.0) if k > 1 else 0.0
    variance_log = between * (1 + 1 / k) + sampling.mean() / k + sampling_now
    quantile = stats.t.ppf(0.5 + level / 2, k - 1) if k > 1 else stats.norm.ppf(0.5 + level / 2)
    s = np.sqrt(variance_log)
    note = (f"learned from {k} backtest origins" if k > 1 else
            "learned from 1 backtest origin: the origin-to-origin error is not measurable, sampling noise only")
    return float(total * np.exp(shift - quantile * s)), float(total * np.exp(shift + quantile * s)), note


def forecast_table(frame: pd.DataFrame, predicted, spread: spreads.Spread | None, history: list[dict] | None,
                   cutoff) -> pd.DataFrame:
    """`clv_forecast` rows: per scope the predicted revenue and its 80% interval (NULL without a spread)."""
    predicted = np.asarray(predicted, float)
    variance = customer_variance(spread, predicted) if spread is not None else None
    rows = []
    for scope, value, mask in scopes(frame):
        total = float(predicted[mask].sum())
        low = high = None
        note = "no predictive distribution for the served model: no interval"
        if spread is not None:
            past = [h for h in history or [] if h["scope"] == scope and h["scope_value"] == value]
            low, high, note = interval(total, float(variance[mask].sum()), past)
        rows.append({"cutoff_date": pd.Timestamp(cutoff).date(), "scope": scope, "scope_value": value,
                     "customers": int(mask.sum()), "predicted_revenue": total, "revenue_p10": low,
                     "revenue_p90": high, "interval_note": note})
    return pd.DataFrame(rows)


def backtest_forecast(history: list[dict]) -> dict:
    """Each origin's interval built from the other origins only: did it hold the realised total, and how
    wide was it (as a share of the predicted total)? Per scope and origin, and a summary."""
    table = pd.DataFrame(history)
    if table.empty:
        return {"origins": {}, "held_share": float("nan")}
    checks = []
    for (scope, value), group in table.groupby(["scope", "scope_value"], sort=False):
        for record in group.to_dict("records"):
            others = [r for r in group.to_dict("records") if r["origin"] != record["origin"]]
            low, high, _ = interval(record["predicted"], record["variance"], others)
            checks.append({"origin": record["origin"], "scope": scope, "scope_value": value,
                           "predicted": record["predicted"], "actual": record["actual"], "low": low, "high": high,
                           "held": bool(low <= record["actual"] <= high),
                           "width_share": (high - low) / record["predicted"] if record["predicted"] > 0 else float("nan")})
    checks = pd.DataFrame(checks)
    whole = checks[checks["scope"] == "all"]
    return {"all": whole.drop(columns=["scope", "scope_value"]).to_dict("records"),
            "held_share_all": float(whole["held"].mean()), "held_share_scopes": float(checks["held"].mean()),
            "median_width_share_all": float(whole["width_share"].median()),
            "scopes": checks.to_dict("records"),
            "note": "each origin's interval from the other origins' totals only"}
