"""Print the README's accuracy tables from the JSON files `clv bench accuracy` wrote.

    python scripts/accuracy_tables.py benchmarks/accuracy-online-retail.json benchmarks/accuracy-synthetic.json ...
"""

import json
import sys

COLUMNS = ["mae", "rmse", "normalized_gini", "spearman", "decile_mape", "top10_capture", "calibration_ratio"]

for path in sys.argv[1:]:
    result = json.load(open(path))
    print(f"**{result['dataset']}** (`{path}`): trained on cutoffs {', '.join(result['train_cutoffs']) or 'none'}, "
          f"tested at {result['test_cutoff']} on {result['customers_test']:,} customers, "
          f"horizon {result['horizon_days']} days.\n")
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for model, metrics in result["models"].items():
        cells = [f"{metrics[c]:,.3f}" if metrics.get(c) is not None else "" for c in COLUMNS]
        print(f"| {model} | " + " | ".join(cells) + " |")
    print()
