"""Campaign experiments: canary and A/B target lists, and the analysis of an A/B test's observed revenue."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy import stats


def canary_targets(scores: pd.DataFrame, size: int, challenger_share: float = 0.05) -> pd.DataFrame:
    """`size` customers: the top (1 - share) by champion prediction, the rest the challenger's top picks
    among the others. `scores` has customer_id, champion_prediction, challenger_prediction."""
    if not 0 < size <= len(scores):
        raise ValueError(f"target list size must be between 1 and {len(scores)} customers (got {size})")
    n_challenger = int(round(size * challenger_share))
    by_champion = scores.sort_values(["champion_prediction", "customer_id"], ascending=[False, True])
    champion_picks = by_champion.head(size - n_challenger)
    rest = scores[~scores["customer_id"].isin(champion_picks["customer_id"])]
    challenger_picks = rest.sort_values(["challenger_prediction", "customer_id"], ascending=[False, True]).head(n_challenger)
    return pd.concat([champion_picks.assign(chosen_by="champion"), challenger_picks.assign(chosen_by="challenger")],
                     ignore_index=True)[["customer_id", "chosen_by", "champion_prediction", "challenger_prediction"]]


def ab_assignment(customer_ids, seed: int) -> np.ndarray:
    """A or B per customer, 50/50, from a seeded hash of the id: stable across runs and machines."""
    def arm(customer_id) -> str:
        digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
        return "A" if digest[0] % 2 == 0 else "B"
    return np.array([arm(c) for c in customer_ids], dtype=object)


def welch_ab(control, treatment, alpha: float = 0.05, power: float = 0.8,
             min_detectable_lift: float | None = None) -> dict:
    """Lift of treatment over control, Welch's t-test, the (1 - alpha) confidence interval of the difference
    in means (Welch-Satterthwaite degrees of freedom), and whether each arm had the customers needed to
    detect `min_detectable_lift` (default: the observed lift) with the given power."""
    a, b = np.asarray(control, float), np.asarray(treatment, float)
    mean_a, mean_b = a.mean(), b.mean()
    var_a, var_b = a.var(ddof=1), b.var(ddof=1)
    se = np.sqrt(var_a / len(a) + var_b / len(b))
    df = se**4 / ((var_a / len(a)) ** 2 / (len(a) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
    test = stats.ttest_ind(b, a, equal_var=False)
    margin = stats.t.ppf(1 - alpha / 2, df) * se
    lift = (mean_b - mean_a) / mean_a if mean_a else float("nan")
    target_lift = abs(min_detectable_lift if min_detectable_lift is not None else lift)
    delta = target_lift * abs(mean_a)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    needed = int(np.ceil(z**2 * (var_a + var_b) / delta**2)) if delta > 0 else None
    return {
        "customers_control": int(len(a)), "customers_treatment": int(len(b)),
        "mean_control": float(mean_a), "mean_treatment": float(mean_b),
        "lift": float(lift), "difference": float(mean_b - mean_a),
        "t_statistic": float(test.statistic), "p_value": float(test.pvalue), "degrees_of_freedom": float(df),
        "ci_low": float(mean_b - mean_a - margin), "ci_high": float(mean_b - mean_a + margin),
        "confidence": 1 - alpha, "significant": bool(test.pvalue < alpha),
        "customers_needed_per_arm": needed, "detectable_lift": float(target_lift),
        "sample_large_enough": bool(needed is not None and min(len(a), len(b)) >= needed),
    }
