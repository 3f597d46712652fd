"""Why a customer got their score, for the people who read `clv_scores`: the three inputs that move the
prediction most, in words a marketer can read ("spent 1,240 in the last 365 days (+310)": the input's
value, then how much it adds to or takes from the prediction, in currency, against the average customer),
and the same facts as JSON for tools (`reason_contributions`)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Phrases of the inputs: "{v}" is the customer's value, formatted by kind (money and counts with thousands
# separators, shares as percentages, durations in minutes). Window features ("_30d", "_90d", ...) are
# matched by pattern below; an input without a phrase is shown by its column name.
PHRASES = {
    "last_year_spend": ("spent {v} in the last year", "money"),
    "days_since_last_order": ("last order {v} days ago", "count"),
    "days_since_last_session": ("last visit {v} days ago", "count"),
    "sessions_since_last_order": ("{v} site visits since the last order", "count"),
    "add_to_cart_since_last_order": ("{v} add-to-carts since the last order", "count"),
    "days_since_signup": ("signed up {v} days ago", "count"),
    "order_days_count": ("ordered on {v} different days", "count"),
    "orders_count": ("{v} orders in all", "count"),
    "avg_order_value": ("average order {v}", "money"),
    "tenure_days": ("first order {v} days ago", "count"),
    "revenue_total": ("spent {v} in all", "money"),
    "btyd_frequency": ("bought again on {v} days", "count"),
    "btyd_recency": ("{v} days from first to last purchase", "count"),
    "btyd_t": ("first purchase {v} days ago", "count"),
    "btyd_monetary_value": ("average repeat purchase {v}", "money"),
    "mean_days_between_orders": ("orders every {v} days on average", "count"),
    "std_days_between_orders": ("order gaps vary by {v} days", "count"),
    "distinct_products_count": ("{v} different products in all", "count"),
    "product_diversity_ratio": ("product variety {v}", "ratio"),
    "return_rate": ("returned {v} of spend", "share"),
    "revenue_share_90d": ("{v} of the year's spend in the last 90 days", "share"),
    "revenue_next_90d_last_year": ("spent {v} in the same 90 days last year", "money"),
    "revenue_next_91_180d_last_year": ("spent {v} in the 90 days after those, last year", "money"),
    "cutoff_month": ("scored in month {v}", "count"),
    "observable_history_days": ("{v} days of history", "count"),
    "expected_orders": ("expected orders (BG/NBD) {v}", "ratio"),
    "p_alive": ("still active with probability {v}", "share"),
    "expected_order_value": ("expected order value (Gamma-Gamma) {v}", "money"),
    "btyd_clv": ("BG/NBD value {v}", "money"),
}
WINDOW_PHRASES = (
    (re.compile(r"revenue_sum_(\d+)d"), "spent {v} in the last {n} days", "money"),
    (re.compile(r"orders_count_(\d+)d"), "{v} orders in the last {n} days", "count"),
    (re.compile(r"distinct_products_(\d+)d"), "bought {v} different products in the last {n} days", "count"),
    (re.compile(r"sessions_count_(\d+)d"), "{v} site visits in the last {n} days", "count"),
    (re.compile(r"session_duration_s_mean_(\d+)d"), "visits of {v} minutes in the last {n} days", "minutes"),
    (re.compile(r"add_to_cart_count_(\d+)d"), "{v} add-to-carts in the last {n} days", "count"),
)
COUNTED_THINGS = (" orders", " different products", " site visits", " add-to-carts")  # 0 of them reads "no"
VALUE_OF = {"last_year_spend": "revenue_sum_365d"}  # a model term whose value is another column's
# inputs that state the same fact as another term: their contributions are added to it (the offset model
# has last year's spend both as its starting point and as a tree input; a marketer reads one fact)
SAME_FACT = {"revenue_sum_365d": "last_year_spend"}


def phrase(feature: str) -> tuple[str, str]:
    """(template with "{v}", value kind) of one model input."""
    if feature in PHRASES:
        return PHRASES[feature]
    for pattern, template, kind in WINDOW_PHRASES:
        match = pattern.fullmatch(feature)
        if match:
            return template.replace("{n}", match.group(1)), kind
    return feature + " {v}", "ratio"


def _each_distinct(values: np.ndarray, text) -> pd.Series:
    """text(value) for every value, calling it once per distinct value (scores repeat values a lot)."""
    distinct, index = np.unique(np.asarray(values, dtype="float64"), return_inverse=True)
    return pd.Series(np.array([text(v) for v in distinct.tolist()], dtype=object)[index.ravel()])


def _whole_numbers(values: np.ndarray) -> np.ndarray:
    """The values rounded as "{:.0f}" rounds them (half to even), so that formatting them gives the same text
    with far fewer distinct values; a value that rounds to zero keeps its sign ("-0") as a distinct +-0.25."""
    rounded = np.round(np.asarray(values, dtype="float64"))
    return np.where(rounded == 0, np.copysign(0.25, rounded), rounded)


def _format(values: np.ndarray, kind: str) -> pd.Series:
    if kind == "share":
        return _each_distinct(values, "{:.0%}".format)
    if kind == "minutes":
        return _each_distinct(np.asarray(values, dtype="float64") / 60, "{:,.1f}".format)
    if kind == "ratio":
        return _each_distinct(values, "{:,.2f}".format)
    return _each_distinct(_whole_numbers(values), "{:,.0f}".format)


def describe(feature: str, values: np.ndarray, contributions: np.ndarray) -> pd.Series:
    """"<phrase with the value> (<contribution>)" for one input over many rows; a missing value reads
    "<feature> not recorded"."""
    template, kind = phrase(feature)
    head, _, tail = template.partition("{v}")
    missing = feature + " not recorded"
    known = pd.notna(pd.Series(values, dtype="float64")).to_numpy()
    value_text = _format(values, kind).to_numpy(object)
    if tail.startswith(COUNTED_THINGS):  # "bought no different products", not "bought 0 different products"
        value_text = np.where(value_text == "0", "no", value_text)
    contribution_text = _each_distinct(_whole_numbers(contributions), "{:+,.0f}".format).to_numpy(object)
    return pd.Series([f"{head}{value}{tail} ({contribution})" if is_known else f"{missing} ({contribution})"
                      for value, contribution, is_known in zip(value_text, contribution_text, known)], dtype=object)


def _json_number(values: np.ndarray) -> pd.Series:
    text = _each_distinct(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0), "%.6g".__mod__)
    return text.where(np.isfinite(values), "null")


def merge_same_facts(contributions: pd.DataFrame) -> pd.DataFrame:
    """One column per fact: an input of SAME_FACT present beside its term is added into it."""
    merged = contributions
    for column, into in SAME_FACT.items():
        if column in merged and into in merged:
            merged = merged.assign(**{into: merged[into] + merged[column]}).drop(columns=column)
    return merged


def top_reasons(contributions: pd.DataFrame, values: pd.DataFrame, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the k inputs with the largest |contribution|: (text for people, JSON for tools).
    `contributions` has one column per model input; `values` holds the inputs' values (a column absent
    from it reads "not recorded"). Vectorised per input, not per row."""
    n = len(contributions)
    if n == 0 or contributions.shape[1] == 0:
        return np.array([], dtype=object), np.array([], dtype=object)
    contributions = merge_same_facts(contributions)
    names = list(contributions.columns)
    matrix = contributions.to_numpy(float)
    k = min(k, matrix.shape[1])
    top = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :k]
    texts, jsons = [], []
    for j in range(k):
        chosen = top[:, j]
        text, record = np.empty(n, dtype=object), np.empty(n, dtype=object)
        for index in np.unique(chosen):
            rows = np.flatnonzero(chosen == index)
            feature = names[index]
            source = VALUE_OF.get(feature, feature)
            value = (values[source].to_numpy(float)[rows] if source in values
                     else np.full(len(rows), np.nan))
            contribution = matrix[rows, index]
            text[rows] = describe(feature, value, contribution).to_numpy(object)
            record[rows] = [f'{{"feature": "{feature}", "value": {v}, "contribution": {c}}}' for v, c in
                            zip(_json_number(value), _json_number(np.round(contribution, 2)))]
        texts.append(text)
        jsons.append(record)
    text = np.array(["; ".join(parts) for parts in zip(*texts)], dtype=object)
    record = np.array(["[" + ", ".join(parts) + "]" for parts in zip(*jsons)], dtype=object)
    return text, record


def reasons_in_batches(model, features: pd.DataFrame, batch_size: int = 200_000, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Top-k reasons (text, JSON) per customer, batch by batch so memory stays bounded: contributions in
    currency relative to the average customer (`explain`: exact TreeSHAP, last year's spend as its own
    term), or the model's raw SHAP margin for models without it."""
    texts = np.empty(len(features), dtype=object)
    jsons = np.empty(len(features), dtype=object)
    for start in range(0, len(features), batch_size):
        batch = features.iloc[start:start + batch_size]
        contributions = model.explain(batch) if hasattr(model, "explain") else model.contributions(batch)
        text, record = top_reasons(contributions, batch, k)
        texts[start:start + len(batch)] = text
        jsons[start:start + len(batch)] = record
    return texts, jsons


def fallback_reasons(features: pd.DataFrame, horizon_days: int, model_type: str = "last_period", predictions=None,
                     why: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The reasons while a fallback is served: last year's spend (scaled or not) states last year's spend; a
    BTYD model states the repeat purchases and the time since the last one it read."""
    if model_type in ("last_period", "last_period_scaled") or predictions is None:
        text, record = baseline_reasons(features, horizon_days)
        if model_type == "last_period_scaled":
            spend = features["revenue_sum_365d"].clip(lower=0).fillna(0).to_numpy(float) * horizon_days / 365
            factor = float(np.sum(predictions) / spend.sum()) if spend.sum() > 0 else 1.0
            text = np.array([t.replace("; last year's spend", f"; last year's spend x {factor:.2f} (its level in the "
                                       "backtest)") for t in text], dtype=object)
        return text, record
    repeat = features["btyd_frequency"].fillna(0).to_numpy(float)
    since = (features["btyd_t"] - features["btyd_recency"]).fillna(0).to_numpy(float)
    name = "BG/NBD + Gamma-Gamma" if model_type == "bgnbd_gg" else "Pareto/NBD + Gamma-Gamma"
    text = ("bought again on " + pd.Series(repeat).map("{:,.0f}".format) + " days; last purchase "
            + pd.Series(since).map("{:,.0f}".format) + f" days ago; {name} is served: no model has passed the gates yet")
    record = ('[{"feature": "btyd_frequency", "value": ' + _json_number(repeat) + ', "contribution": null}, '
              '{"feature": "days_since_last_purchase", "value": ' + _json_number(since) + ', "contribution": null}]')
    return text.to_numpy(object), record.to_numpy(object)


def baseline_reasons(features: pd.DataFrame, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """The reasons while last year's spend is served: it is the only input (scaled to the horizon)."""
    spend = features["revenue_sum_365d"].clip(lower=0).fillna(0).to_numpy(float)
    text = ("spent " + pd.Series(spend).map("{:,.0f}".format) + " in the last year; last year's spend"
            + (f" (x {horizon_days}/365)" if horizon_days != 365 else "")
            + " is served: no model has passed the gates yet")
    record = '[{"feature": "last_year_spend", "value": ' + _json_number(spend) + ', "contribution": null}]'
    return text.to_numpy(object), record.to_numpy(object)
