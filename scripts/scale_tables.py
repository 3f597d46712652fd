"""Print the README's scale table and the cycle-time exponent from the JSON files `clv bench scale` wrote.

    python scripts/scale_tables.py benchmarks/scale-250k.json benchmarks/scale-500k.json ...
"""

import json
import sys

import numpy as np

runs = sorted((json.load(open(path)) for path in sys.argv[1:]), key=lambda r: r["customers"])
stages = ["land", "validate", "features", "train", "register", "score", "reasons", "monitor"]
print("| | " + " | ".join(f"{r['customers']:,} customers" for r in runs) + " |")
print("| --- |" + " --- |" * len(runs))
print("| order lines / events (week 1) | " + " | ".join(f"{r['orders']:,} / {r['events']:,}" for r in runs) + " |")
for week in (1, 2):
    label = "week 1 (two years landed, trains)" if week == 1 else "week 2 (seven more days)"
    print(f"| **{label}** |" + " |" * len(runs))
    for stage in stages:
        cells = []
        for r in runs:
            w = r["weeks"][week - 1] if len(r["weeks"]) >= week else None
            cells.append(f"{w['stages'][stage]['seconds']:.1f} s" if w and stage in w["stages"] else "-")
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| cycle | " + " | ".join(f"**{r['weeks'][week - 1]['weekly_cycle_seconds']:.1f} s**" for r in runs) + " |")
    print("| peak RSS | " + " | ".join(f"{r['weeks'][week - 1]['peak_rss_mb'] / 1024:.1f} GB" for r in runs) + " |")
    print("| feature build (dbt, customer_features and upstream) / floor | " + " | ".join(
        f"{r['weeks'][week - 1]['feature_build_seconds']:.1f} s / {r['weeks'][week - 1]['raw_scan_seconds']:.2f} s "
        f"= {r['weeks'][week - 1]['feature_build_to_scan_ratio']:.1f}x" for r in runs) + " |")
    print("| cutoffs built / kept | " + " | ".join(
        f"{r['weeks'][week - 1]['cutoffs_built']} / {r['weeks'][week - 1]['cutoffs_kept']}" for r in runs) + " |")
print("| week 2 / week 1 | " + " | ".join(
    f"{r['weeks'][1]['weekly_cycle_seconds'] / r['weeks'][0]['weekly_cycle_seconds']:.0%}" for r in runs) + " |")
customers = np.log([r["customers"] for r in runs])
for week in (1, 2):
    seconds = np.log([r["weeks"][week - 1]["weekly_cycle_seconds"] for r in runs])
    slope = np.polyfit(customers, seconds, 1)[0]
    print(f"\nweek {week}: cycle-time exponent (log-log slope over {len(runs)} sizes) {slope:.2f}")
