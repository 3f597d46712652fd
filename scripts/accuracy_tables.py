"""Print the README's accuracy tables from the JSON files `clv bench accuracy` wrote.

    python scripts/accuracy_tables.py benchmarks/accuracy-online-retail.json benchmarks/accuracy-synthetic.json ...
"""

import json
import sys

HEADLINE = [("mae", "{:,.1f}"), ("normalized_gini", "{:.3f}"), ("calibration_ratio", "{:.3f}")]


def interval(values, fmt):
    return "" if not values or values[0] is None else f"[{fmt.format(values[0])}, {fmt.format(values[1])}]"


for path in sys.argv[1:]:
    result = json.load(open(path))
    note = f"; {result['protocol_note']}" if result.get("protocol_note") else ""
    print(f"**{result['dataset']}** (`{path}`): origins {', '.join(result['origins'])}, backtest horizon "
          f"{result['backtest_horizon_days']} days{note}; {result['rows']:,} customer rows "
          f"({result['customers']:,} customers), {result['bootstrap_resamples']} paired bootstrap resamples.\n")
    print("| model | MAE [95%] | vs last_period | normalized Gini [95%] | vs last_period | calibration [95%] |")
    print("|---|---|---|---|---|---|")
    for model, metrics in result["models"].items():
        ci = result["ci"].get(model, {})
        cells = []
        for metric, fmt in HEADLINE:
            cells.append(f"{fmt.format(metrics[metric])} {interval(ci.get(metric), fmt)}")
            if metric != "calibration_ratio":
                cells.append(interval(ci.get(f"{metric}_diff_vs_last_period"), fmt.replace(":", ":+")))
        star = " (champion)" if model == result.get("champion") else ""
        print(f"| {model}{star} | " + " | ".join(cells) + " |")
    champion_ci = result["ci"].get(result.get("champion"), {})
    for ceiling in ("oracle", "bayes_ceiling"):
        gap = champion_ci.get(f"normalized_gini_diff_vs_{ceiling}")
        if gap:
            print(f"\nChampion minus {ceiling}: normalized Gini "
                  f"{result['models'][result['champion']]['normalized_gini'] - result['models'][ceiling]['normalized_gini']:+.3f} "
                  f"{interval(gap, '{:+.3f}')}, MAE {interval(champion_ci[f'mae_diff_vs_{ceiling}'], '{:+.1f}')}")
    if result.get("tuning"):
        print(f"\nTuning: {json.dumps(result['tuning'])}")
    print()
