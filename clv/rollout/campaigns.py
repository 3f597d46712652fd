"""Campaign segments from the latest shadow run (canary list, A/B assignment) and the A/B analysis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clv.ingest.landing import source_relation_sql
from clv.warehouse.embedded import connect_in_memory
from clv.warehouse.engines import open_warehouse
from models_ml.experiments import ab_assignment, canary_targets, welch_ab


def _shadow(store) -> tuple[pd.DataFrame, str, str]:
    runs = store.read("select champion_version, challenger_version from shadow_runs order by run_at desc limit 1") \
        if store.has("shadow_runs") else pd.DataFrame()
    if runs.empty:
        raise LookupError("no shadow run in this warehouse: run `clv shadow` first")
    return store.read("select * from shadow_scores"), str(runs.iloc[0, 0]), str(runs.iloc[0, 1])


def write_segments(warehouse: Path | str | None, kind: str, size: int | None = None, seed: int = 1,
                   challenger_share: float = 0.05, target: str | None = None) -> pd.DataFrame:
    """`campaign_canary` (size customers, 95% champion picks, 5% challenger picks) or `campaign_ab`
    (every customer of the shadow run, seeded 50/50: A = champion, B = challenger), with model versions."""
    store = open_warehouse(target, warehouse)
    scores, champion, challenger = _shadow(store)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    if kind == "canary":
        table = canary_targets(scores, size or max(len(scores) // 10, 1), challenger_share)
        table["model_version"] = table["chosen_by"].map({"champion": champion, "challenger": challenger})
    elif kind == "ab":
        arms = ab_assignment(scores["customer_id"], seed)
        table = pd.DataFrame({"customer_id": scores["customer_id"], "arm": arms,
                              "model_version": pd.Series(arms).map({"A": champion, "B": challenger}).to_numpy(),
                              "seed": seed})
    else:
        raise ValueError(f"unknown segment kind {kind!r}: use canary or ab")
    table = table.assign(champion_version=champion, challenger_version=challenger, created_at=now)
    store.replace_table(f"campaign_{kind}", table)
    return table


def analyze_ab(warehouse: Path | str | None, observed: Path | str, min_detectable_lift: float | None = None,
               target: str | None = None) -> dict:
    """Join observed revenue (file with customer_id, revenue) to `campaign_ab` and compare the arms;
    customers of the test without an observed row count as zero revenue."""
    arms = open_warehouse(target, warehouse).read("select customer_id, arm from campaign_ab")
    with connect_in_memory() as con:
        columns = {row[0] for row in con.execute(f"describe select * from {source_relation_sql(observed)}").fetchall()}
        missing = {"customer_id", "revenue"} - columns
        if missing:
            raise ValueError(f"observed revenue file {observed}: missing column(s) {', '.join(sorted(missing))}")
        con.register("ab", arms)
        frame = con.execute(
            f"""select ab.customer_id, ab.arm, coalesce(sum(try_cast(o.revenue as double)), 0) as revenue
                from ab
                left join {source_relation_sql(observed)} o on cast(o.customer_id as varchar) = ab.customer_id
                group by 1, 2""").df()
    result = welch_ab(frame.loc[frame["arm"] == "A", "revenue"], frame.loc[frame["arm"] == "B", "revenue"],
                      min_detectable_lift=min_detectable_lift)
    return result
