"""Shadow comparison of champion and challenger on the same customers."""

from __future__ import annotations

import numpy as np

from models_ml.metrics import spearman


def compare_shadow(champion, challenger, champion_seconds: float, challenger_seconds: float,
                   max_mean_shift: float = 0.15, max_runtime_ratio: float = 3.0,
                   min_timed_seconds: float = 0.5) -> dict:
    """Pass when the mean predicted value moves by less than `max_mean_shift` (relative) and the
    challenger scores within `max_runtime_ratio` x the champion's time; the rank correlation of the two
    is reported. A challenger that scores everyone in under `min_timed_seconds` is not held to the ratio:
    times of milliseconds (a small shop) measure the machine's load, not the model."""
    champion, challenger = np.asarray(champion, float), np.asarray(challenger, float)
    mean_champion, mean_challenger = float(champion.mean()), float(challenger.mean())
    shift = abs(mean_challenger - mean_champion) / mean_champion if mean_champion > 0 else float("inf")
    runtime_ratio = challenger_seconds / max(champion_seconds, 1e-9)
    return {
        "customers": int(len(champion)),
        "mean_champion": mean_champion,
        "mean_challenger": mean_challenger,
        "mean_shift": shift,
        "spearman": spearman(champion, challenger),
        "champion_seconds": champion_seconds,
        "challenger_seconds": challenger_seconds,
        "runtime_ratio": runtime_ratio,
        "max_mean_shift": max_mean_shift,
        "max_runtime_ratio": max_runtime_ratio,
        "runtime_gated": challenger_seconds >= min_timed_seconds,
        "passed": bool(shift < max_mean_shift
                       and (runtime_ratio <= max_runtime_ratio or challenger_seconds < min_timed_seconds)),
    }
