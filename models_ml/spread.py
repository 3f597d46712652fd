"""How sure: each customer's predictive distribution of next-horizon revenue, learned out of time.

Method: binned (Mondrian) conformal prediction on the strict backtest's out-of-time rows. Customers are
put in bins by the rank of their predicted mean within their own cutoff's population (deciles of the
customers predicted above 0, and one bin for a prediction of 0). Within a bin the distribution of
revenue is the bin's empirical distribution of actual / predicted (of actual revenue in the zero bin),
stored as the share of customers who bought nothing (`p_zero`) and the quantiles of the rest. A customer's
distribution is that of their bin, scaled by their own predicted mean: P(no purchase) is the bin's
`p_zero`, the 10th, 50th and 90th percentiles are the predicted mean times the bin's quantiles.

Why this and not a quantile or distributional model: it works for every model the run may serve (the
trained types and the label-free fallbacks alike), it costs one sort at scoring time, and its coverage
is guaranteed within each bin when the checked cutoff resembles the ones it was learned on; the
backtest measures whether it does, origin by origin (`evaluate_spread`). Ranks rather than values keep a
growing shop's bins comparable across cutoffs; ratios carry the scale.

Checking a distribution with a point mass at 0 (most customers buy nothing in a horizon): an actual of 0
is a draw from the whole mass (the randomized PIT of Czado, Gneiting and Held 2009), so a customer with
P(no purchase) 0.5 who buys nothing counts 0.8 inside the central 80% interval, not 1. CRPS comes from
`scoringrules` (a quantile ensemble of each customer's distribution).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import scoringrules

LEVELS = np.round(np.arange(0.005, 1.0, 0.005), 3)  # quantile levels of the positive part, stored per bin
INTERVAL = (0.1, 0.9)  # the published central 80% interval
COVERAGE_BAND = (0.75, 0.85)
MAX_BINS = 10
MIN_BIN_ROWS = 300
ENSEMBLE_MEMBERS = 50  # quantiles per customer for the CRPS


@dataclass
class Spread:
    """The fitted bins: `edges` of the rank fraction among positive predictions; per bin (index 0 is the
    bin of predictions of 0) the share of customers who bought nothing and the quantiles at `LEVELS` of
    actual / predicted among the others (of actual revenue in the zero bin)."""

    horizon_days: int
    edges: list[float]
    p_zero: list[float]
    quantiles: list[list[float]]
    rows: int = 0
    origins: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Spread:
        return cls(**values)


def rank_fraction(predicted) -> np.ndarray:
    """Each prediction's rank among the positive predictions of its population, in (0, 1]; -1 for 0."""
    predicted = np.asarray(predicted, float)
    positive = predicted > 0
    out = np.full(len(predicted), -1.0)
    if positive.any():
        out[positive] = pd.Series(predicted[positive]).rank(method="average").to_numpy() / positive.sum()
    return out


def _bin_of(fraction: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index per row: 0 for a prediction of 0, else 1..len(edges)-1 by rank fraction."""
    inner = np.clip(np.searchsorted(np.asarray(edges)[1:-1], fraction, side="left"), 0, len(edges) - 2) + 1
    return np.where(fraction < 0, 0, inner)


def fit_spread(actual, predicted, fraction, horizon_days: int, origins=()) -> Spread:
    """Bins from out-of-time rows: actual revenue, the predicted mean and its rank fraction within its
    cutoff (`rank_fraction`, computed per cutoff)."""
    actual, predicted, fraction = (np.asarray(a, float) for a in (actual, predicted, fraction))
    bins = int(np.clip((fraction >= 0).sum() // MIN_BIN_ROWS, 1, MAX_BINS))
    edges = [float(e) for e in np.linspace(0.0, 1.0, bins + 1)]
    which = _bin_of(fraction, edges)
    p_zero, quantiles = [], []
    for b in range(bins + 1):
        mask = which == b
        value = actual[mask] if b == 0 else actual[mask] / predicted[mask]
        bought = value[value > 0]
        p_zero.append(float(1.0 - len(bought) / mask.sum()) if mask.any() else 1.0)
        quantiles.append([float(q) for q in np.quantile(bought, LEVELS)] if len(bought) else [0.0] * len(LEVELS))
    return Spread(int(horizon_days), edges, p_zero, quantiles, int(len(actual)), [str(o) for o in origins])


def _bins(spread: Spread, predicted, ranks=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: the bin, its P(no purchase) and the scale of its quantiles (the predicted mean; 1 in
    the zero bin). `ranks`: rank fractions taken in a larger population (default: within `predicted`)."""
    predicted = np.asarray(predicted, float)
    which = _bin_of(rank_fraction(predicted) if ranks is None else np.asarray(ranks, float), spread.edges)
    return which, np.asarray(spread.p_zero)[which], np.where(which == 0, 1.0, predicted)


def quantiles_of(spread: Spread, predicted, levels, ranks=None) -> np.ndarray:
    """Quantiles (one column per level) of each customer's predicted revenue."""
    which, p0, scale = _bins(spread, predicted, ranks)
    table = np.asarray(spread.quantiles)
    out = np.zeros((len(which), len(levels)))
    for j, level in enumerate(levels):
        conditional = np.clip((level - p0) / np.where(p0 < 1, 1 - p0, 1), LEVELS[0], LEVELS[-1])
        for b in np.unique(which):
            rows = which == b
            out[rows, j] = np.interp(conditional[rows], LEVELS, table[b]) * scale[rows]
        out[level <= p0, j] = 0.0
    return out


def distribution_columns(spread: Spread, predicted) -> pd.DataFrame:
    """`p_no_purchase` and the 10th, 50th and 90th percentiles of each customer's revenue."""
    _, p0, _ = _bins(spread, predicted)
    q = quantiles_of(spread, predicted, (0.1, 0.5, 0.9))
    return pd.DataFrame({"p_no_purchase": p0, "predicted_clv_p10": q[:, 0], "predicted_clv_p50": q[:, 1],
                         "predicted_clv_p90": q[:, 2]})


def _cdf(spread: Spread, predicted, actual) -> tuple[np.ndarray, np.ndarray]:
    """F(actual-) and F(actual) of each customer's distribution (they differ at the point mass at 0)."""
    actual = np.asarray(actual, float)
    which, p0, scale = _bins(spread, predicted)
    conditional = np.zeros(len(actual))
    for b in np.unique(which):
        rows = which == b
        conditional[rows] = np.interp(actual[rows] / scale[rows], np.concatenate(([0.0], spread.quantiles[b])),
                                      np.concatenate(([0.0], LEVELS)), right=1.0)
    upper = np.where(actual > 0, p0 + (1 - p0) * conditional, np.where(actual == 0, p0, 0.0))
    lower = np.where(actual > 0, upper, 0.0)
    return lower, upper


def coverage_terms(spread: Spread, predicted, actual, interval=INTERVAL) -> np.ndarray:
    """Per customer, the probability that the randomized PIT falls inside the central interval (1 or 0 for
    a positive actual; the share of the point mass inside it for an actual of 0)."""
    lower, upper = _cdf(spread, predicted, actual)
    a, b = interval
    span = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip(np.minimum(upper, b) - np.maximum(lower, a), 0, None) / span
    return np.where(span > 0, share, ((upper >= a) & (upper <= b)).astype(float))


def crps(spread: Spread, predicted, actual, chunk: int = 50_000) -> np.ndarray:
    """Each customer's CRPS (scoringrules, a quantile ensemble of `ENSEMBLE_MEMBERS` members)."""
    levels = (np.arange(ENSEMBLE_MEMBERS) + 0.5) / ENSEMBLE_MEMBERS
    predicted, actual = np.asarray(predicted, float), np.asarray(actual, float)
    ranks = rank_fraction(predicted)  # bins by rank in the whole population, whatever the chunk
    out = [np.asarray(scoringrules.crps_ensemble(actual[s:s + chunk],
                                                 quantiles_of(spread, predicted[s:s + chunk], levels, ranks[s:s + chunk])),
                      float) for s in range(0, len(actual), chunk)]
    return np.concatenate(out) if out else np.array([])


def origin_ranks(origins, predicted) -> np.ndarray:
    """Rank fractions taken within each origin's own population (`rank_fraction` per origin)."""
    origins, predicted = np.asarray(origins), np.asarray(predicted, float)
    out = np.empty(len(predicted))
    for origin in pd.unique(origins):
        rows = origins == origin
        out[rows] = rank_fraction(predicted[rows])
    return out


def fit_on_backtest(rows: pd.DataFrame, predicted, horizon_days: int, origins=None) -> Spread:
    """The spread of a model's out-of-time backtest predictions (`rows`: origin, actual), on the given
    origins (default all)."""
    keep = np.ones(len(rows), bool) if origins is None else rows["origin"].isin(list(origins)).to_numpy()
    kept = rows[keep]
    predicted = np.asarray(predicted, float)[keep]
    return fit_spread(kept["actual"].to_numpy(float), predicted, origin_ranks(kept["origin"], predicted),
                      horizon_days, pd.unique(kept["origin"]))


def _summary(actual, predicted, covered, width, crps_values) -> dict:
    return {"rows": int(len(actual)), "coverage_80": float(np.mean(covered)) if len(actual) else float("nan"),
            "mean_width_80": float(np.mean(width)) if len(actual) else float("nan"),
            "width_share_of_mean": float(np.mean(width) / max(np.mean(predicted), 1e-12)) if len(actual) else float("nan"),
            "crps": float(np.mean(crps_values)) if len(actual) else float("nan")}


def evaluate_spread(rows: pd.DataFrame, predicted, horizon_days: int, tier_shares=(0.2, 0.3),
                    slice_columns=("country", "acquisition_channel")) -> dict:
    """Coverage of the central 80% interval, its mean width and the CRPS, per origin and overall (the mean
    over origins), by tier, decile of the prediction and slice, each origin checked with the bins learned
    on the other origins (leave one origin out; with a single origin, in sample, and said so)."""
    from models_ml.scoring import assign_tiers

    predicted = np.asarray(predicted, float)
    origins = list(pd.unique(rows["origin"]))
    actual = rows["actual"].to_numpy(float)
    covered, width, crps_values = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
    tiers, deciles, p_none = np.empty(len(rows), object), np.zeros(len(rows), int), np.zeros(len(rows))
    for origin in origins:
        here = (rows["origin"] == origin).to_numpy()
        others = [o for o in origins if o != origin] or [origin]
        spread = fit_on_backtest(rows, predicted, horizon_days, others)
        p = predicted[here]
        covered[here] = coverage_terms(spread, p, actual[here])
        q = quantiles_of(spread, p, INTERVAL)
        width[here] = q[:, 1] - q[:, 0]
        crps_values[here] = crps(spread, p, actual[here])
        p_none[here] = _bins(spread, p)[1]
        tiers[here] = assign_tiers(p, *tier_shares)
        deciles[here] = np.minimum((pd.Series(p).rank(method="first").to_numpy() - 1) * 10 // max(here.sum(), 1), 9)
    per_origin = {}
    for origin in origins:
        here = (rows["origin"] == origin).to_numpy()
        per_origin[str(origin)] = {**_summary(actual[here], predicted[here], covered[here], width[here], crps_values[here]),
                                   "p_no_purchase": float(p_none[here].mean()),
                                   "share_no_purchase": float((actual[here] <= 0).mean())}
    overall = {k: float(np.mean([v[k] for v in per_origin.values()])) for k in next(iter(per_origin.values()))}

    def grouped(keys) -> dict:
        return {str(k): _summary(actual[keys == k], predicted[keys == k], covered[keys == k], width[keys == k],
                                 crps_values[keys == k]) for k in pd.unique(keys)}

    by_slice = {c: grouped(rows[c].astype(str).to_numpy()) for c in slice_columns if c in rows}
    return {"method": "binned conformal: the bin's empirical actual / predicted, by rank of the prediction",
            "interval": list(INTERVAL), "horizon_days": int(horizon_days),
            "note": ("leave one origin out: each origin's intervals come from bins learned on the other origins"
                     if len(origins) > 1 else "one origin: the intervals were learned on the rows they are checked on"),
            "overall": overall, "per_origin": per_origin, "by_tier": grouped(tiers),
            "by_decile": {str(int(d) + 1): v for d, v in sorted(grouped(deciles).items(), key=lambda kv: int(kv[0]))},
            "by_slice": by_slice}
