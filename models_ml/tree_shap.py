"""XGBoost's exact TreeSHAP for a million rows, computed tree by tree on one row per split pattern.

A tree's SHAP values for a row depend only on which side of each of that tree's splits the row falls
(XGBoost compares float32 values: `x < threshold` goes left, a missing value takes the node's default
side). A depth-5 tree has tens of such patterns where a shop has a million customers, so each tree's
contributions are computed by XGBoost itself (`pred_contribs` on a slice of that one tree) for one row of each
pattern and handed to every row with the pattern; the ensemble's values are the sum over trees (TreeSHAP
is additive), equal to XGBoost's whole-model `pred_contribs` to float32 precision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

DENSE_PATTERN_LIMIT = 1 << 22  # pattern keys below this are numbered with a lookup table, else hashed


@dataclass
class TreeSplits:
    """The thresholds of one model: per input, all of its thresholds (sorted float32), and per tree the
    inputs it splits on with, for each, a table from the input's overall interval to the tree's."""
    thresholds: dict[int, np.ndarray]
    trees: list[list[tuple[int, np.ndarray]]]  # per tree: (input position, overall interval -> tree interval)


def tree_splits(booster: xgb.Booster) -> TreeSplits | None:
    """The split thresholds of a gradient-boosted model with one tree per round (None otherwise: the
    caller then asks XGBoost for the whole model at once)."""
    model = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    if model.get("name") != "gbtree" or len(model["model"]["trees"]) != booster.num_boosted_rounds():
        return None
    per_tree: list[dict[int, np.ndarray]] = []
    for tree in model["model"]["trees"]:
        internal = np.asarray(tree["left_children"]) != -1
        inputs = np.asarray(tree["split_indices"])[internal]
        conditions = np.asarray(tree["split_conditions"], np.float32)[internal]
        per_tree.append({int(j): np.unique(conditions[inputs == j]) for j in np.unique(inputs)})
    thresholds = {j: np.unique(np.concatenate([t[j] for t in per_tree if j in t]))
                  for j in sorted({j for t in per_tree for j in t})}
    trees = []
    for own in per_tree:
        tables = []
        for j, values in sorted(own.items()):
            overall = thresholds[j]
            # overall interval k (k thresholds reached) -> thresholds of this tree reached; missing last
            reached = np.searchsorted(values, overall, side="right")
            table = np.concatenate([[0], reached, [len(values) + 1]]).astype(np.int64)
            tables.append((j, table))
        trees.append(tables)
    return TreeSplits(thresholds, trees)


def overall_intervals(X: pd.DataFrame, splits: TreeSplits) -> dict[int, np.ndarray]:
    """Per input split on: how many of its thresholds each row's float32 value reaches; missing values
    get the last code (one past the largest)."""
    codes = {}
    for j, values in splits.thresholds.items():
        column = X.iloc[:, j].to_numpy(np.float32)
        code = np.searchsorted(values, column, side="right")
        code[np.isnan(column)] = len(values) + 1
        codes[j] = code
    return codes


def _pattern_ids(key: np.ndarray) -> tuple[np.ndarray, int]:
    """Numbers 0..G-1 for the distinct keys, and G."""
    if key.max() < DENSE_PATTERN_LIMIT:
        seen = np.zeros(int(key.max()) + 1, bool)
        seen[key] = True
        number = np.cumsum(seen) - 1
        return number[key], int(seen.sum())
    ids, uniques = pd.factorize(key)
    return ids, len(uniques)


def contributions(booster: xgb.Booster, X: pd.DataFrame, margin=None, splits: TreeSplits | None = None) -> np.ndarray:
    """`pred_contribs` of every row of X: one column per input, then the bias (the trees' expected value
    plus the row's margin, or the model's base score without one)."""
    if splits is None or len(X) == 0:
        matrix = xgb.DMatrix(X, **({"base_margin": margin} if margin is not None else {}))
        return booster.predict(matrix, pred_contribs=True).astype(np.float64).reshape(len(X), X.shape[1] + 1)
    n = len(X)
    codes = overall_intervals(X, splits)
    # one array for the per-tree slices below (a DMatrix made from a pandas slice costs milliseconds a tree)
    values, names = X.to_numpy(np.float32), list(map(str, X.columns))
    out = np.zeros((X.shape[1] + 1, n))  # one row per input: each tree adds to a few inputs' rows
    for number, tables in enumerate(splits.trees):
        if not tables:
            continue
        key, size = np.zeros(n, np.int64), 1
        for j, table in tables:
            radix = int(table.max()) + 1
            if size * radix >= 1 << 62:  # renumber the patterns so far before the key overflows
                key, size = _pattern_ids(key)
            key, size = key * radix + table[codes[j]], size * radix
        ids, count = _pattern_ids(key)
        one_per_pattern = np.empty(count, np.int64)
        one_per_pattern[ids] = np.arange(n)  # any row of a pattern stands for all of them
        patterns = xgb.DMatrix(values[one_per_pattern], feature_names=names, missing=np.nan)
        tree = booster[number:number + 1].predict(patterns, pred_contribs=True)
        for j, _ in tables:
            out[j] += tree[:, j].astype(np.float64)[ids]
    first = X.iloc[:1]
    whole = booster.predict(xgb.DMatrix(first, **({"base_margin": np.asarray(margin)[:1]} if margin is not None else {})),
                            pred_contribs=True)
    if margin is None:
        out[-1] = float(whole[0, -1])
    else:
        out[-1] = float(whole[0, -1]) - float(np.asarray(margin)[0]) + np.asarray(margin, np.float64)
    return out.T
