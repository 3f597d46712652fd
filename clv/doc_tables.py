"""The tables in `docs/` that have a source of truth elsewhere: the input contract (clv/ingest/contract.py), the
scale benchmark (benchmarks/scale-*.json) and the accuracy benchmark (benchmarks/accuracy-*.json).

Each table sits in its page between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`;
`python scripts/generate_docs.py` rewrites them, `--check` fails when a page is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from clv.ingest.contract import ENTITIES

REPO = Path(__file__).resolve().parents[1]
TYPE_WORDS = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "DOUBLE": "number"}
SCALE_RUNS = ["scale-250k.json", "scale-500k.json", "scale-1m.json", "scale-2m.json"]
ACCURACY_RUNS = ["accuracy-online-retail.json", "accuracy-synthetic.json", "accuracy-synthetic-seasonal.json",
                 "accuracy-cdnow.json"]
SCALE_STAGES = ["land", "validate", "freshness", "features", "train", "register", "score", "reasons", "monitor"]
ACCURACY_HEADLINE = [("deviance", "{:,.1f}"), ("normalized_gini", "{:.3f}"), ("calibration_ratio", "{:.3f}"),
                     ("mae", "{:,.1f}")]


def contract_table() -> str:
    """One row per input column, and one for each entity's personal-data columns."""
    lines = ["| entity | column | type | required | meaning |", "| --- | --- | --- | --- | --- |"]
    for entity in ENTITIES.values():
        for column in entity.columns:
            lines.append(f"| {entity.name} | `{column.name}` | {TYPE_WORDS[column.sql_type]} | "
                         f"{'yes' if column.required else 'no'} | {column.description} |")
        if entity.pii_columns:
            names = ", ".join(f"`{name}`" for name in entity.pii_columns)
            lines.append(f"| {entity.name} | {names} | text | no | personal data: stored only as HMAC-SHA256 "
                         "hashes (`email_hash`, ...) keyed by `CLV_PII_HASH_KEY`; dropped when that variable "
                         "is unset. Never stored in clear text. |")
    return "\n".join(lines)


def scale_table(runs: list[dict]) -> str:
    """Stages, cycle time and memory per shop size and week, and the cycle-time exponent."""
    runs = sorted(runs, key=lambda r: r["customers"])
    out = ["| | " + " | ".join(f"{r['customers']:,} customers" for r in runs) + " |",
           "| --- |" + " --- |" * len(runs),
           "| order lines / events (week 1) | " + " | ".join(f"{r['orders']:,} / {r['events']:,}" for r in runs) + " |"]
    for week in (1, 2):
        label = "week 1 (two years landed, trains)" if week == 1 else "week 2 (seven more days)"
        out.append(f"| **{label}** |" + " |" * len(runs))
        for stage in SCALE_STAGES:
            cells = []
            for r in runs:
                w = r["weeks"][week - 1] if len(r["weeks"]) >= week else None
                cells.append(f"{w['stages'][stage]['seconds']:.1f} s" if w and stage in w["stages"] else "-")
            out.append(f"| {stage} | " + " | ".join(cells) + " |")
        weeks = [r["weeks"][week - 1] for r in runs]
        out.append("| cycle | " + " | ".join(f"**{w['weekly_cycle_seconds']:.1f} s**" for w in weeks) + " |")
        out.append("| peak RSS | " + " | ".join(f"{w['peak_rss_mb'] / 1024:.1f} GB" for w in weeks) + " |")
        out.append("| feature build (dbt, customer_features and upstream) / floor | " + " | ".join(
            f"{w['feature_build_seconds']:.1f} s / {w['raw_scan_seconds']:.2f} s "
            f"= {w['feature_build_to_scan_ratio']:.1f}x" for w in weeks) + " |")
        out.append("| cutoffs built / kept | " + " | ".join(
            f"{w['cutoffs_built']} / {w['cutoffs_kept']}" for w in weeks) + " |")
    out.append("| week 2 / week 1 | " + " | ".join(
        f"{r['weeks'][1]['weekly_cycle_seconds'] / r['weeks'][0]['weekly_cycle_seconds']:.0%}" for r in runs) + " |")
    customers = np.log([r["customers"] for r in runs])
    for week in (1, 2):
        seconds = np.log([r["weeks"][week - 1]["weekly_cycle_seconds"] for r in runs])
        slope = np.polyfit(customers, seconds, 1)[0]
        out.append(f"\nweek {week}: cycle-time exponent (log-log slope over {len(runs)} sizes) {slope:.2f}")
    return "\n".join(out)


def _interval(values, fmt: str) -> str:
    return "" if not values or values[0] is None else f"[{fmt.format(values[0])}, {fmt.format(values[1])}]"


def accuracy_table(result: dict, path: str) -> str:
    """One dataset's backtest: each model's headline metrics with intervals and differences to last year's
    spend, the type and fallback chosen, and the champion's, the fallback's and the ceiling's origins."""
    note = f"; {result['protocol_note']}" if result.get("protocol_note") else ""
    out = [f"**{result['dataset']}** (`{path}`): origins {', '.join(result['origins'])}, backtest horizon "
           f"{result['backtest_horizon_days']} days{note}; {result['rows']:,} customer rows "
           f"({result['customers']:,} customers), {result['bootstrap_resamples']} paired bootstrap resamples "
           "(customers and origins).\n",
           "| model | Poisson deviance [95%] | vs last_period | normalized Gini [95%] | vs last_period | "
           "calibration [95%] | decile calibration error | MAE [95%] (reported) |",
           "|---|---|---|---|---|---|---|---|"]
    for model, metrics in result["models"].items():
        ci = result["ci"].get(model, {})
        cells = []
        for metric, fmt in ACCURACY_HEADLINE:
            cells.append(f"{fmt.format(metrics[metric])} {_interval(ci.get(metric), fmt)}")
            if metric in ("deviance", "normalized_gini"):
                cells.append(_interval(ci.get(f"{metric}_diff_vs_last_period"), fmt.replace(":", ":+")))
            if metric == "calibration_ratio":
                cells.append(f"{metrics.get('decile_calibration_error', float('nan')):.3f}")
        star = " (champion)" if model == result.get("champion") else (
            " (fallback)" if model == (result.get("fallback") or {}).get("type") else "")
        out.append(f"| {model}{star} | " + " | ".join(cells) + " |")
    champion = result.get("champion")
    if result.get("type_choice"):
        out.append(f"\nType chosen: {result['type_choice'].get('why')}. Fallback: {result['fallback'].get('why')}.")
    shown = [m for m in dict.fromkeys([champion, (result.get("fallback") or {}).get("type"), "last_period",
                                        "bayes_ceiling"]) if m in result.get("per_origin", {})]
    out += ["", "| by origin | " + " | ".join(result["origins"]) + " |", "|---|" + "---|" * len(result["origins"])]
    for model in shown:
        out.append(f"| {model} | " + " | ".join(
            f"deviance {m['deviance']:,.1f}, Gini {m['normalized_gini']:.3f}, calibration {m['calibration_ratio']:.3f}"
            for m in result["per_origin"][model].values()) + " |")
    champion_ci = result["ci"].get(champion, {})
    for ceiling in ("oracle", "bayes_ceiling"):
        gap = champion_ci.get(f"normalized_gini_diff_vs_{ceiling}")
        if gap:
            difference = result["models"][champion]["normalized_gini"] - result["models"][ceiling]["normalized_gini"]
            out.append(f"\nChampion minus {ceiling}: normalized Gini {difference:+.3f} "
                       f"{_interval(gap, '{:+.3f}')}, deviance {_interval(champion_ci[f'deviance_diff_vs_{ceiling}'], '{:+.1f}')}")
    if result.get("tuning"):
        out.append(f"\nTuning: {json.dumps(result['tuning'])}")
    return "\n".join(out)


def intervals_table(result: dict, path: str) -> str:
    """One dataset's predictive distributions, checked out of time: each shown model's 80% interval coverage
    (mean and by origin), mean width and CRPS, and how the base's interval held at each origin."""
    distribution, forecast = result.get("distribution") or {}, result.get("base_forecast") or {}
    champion, fallback = result.get("champion"), (result.get("fallback") or {}).get("type")
    shown = [m for m in dict.fromkeys([champion, fallback, "last_period", "bayes_ceiling"]) if m in distribution]
    if not shown:
        return f"**{result['dataset']}** (`{path}`): no predictive distribution in this run."
    out = [f"**{result['dataset']}** (`{path}`), backtest horizon {result['backtest_horizon_days']} days; each origin's "
           "intervals learned on the other origins:\n",
           "| model | 80% coverage | by origin | mean width | CRPS | base total: held at | base interval width / total (median) |",
           "|---|---|---|---|---|---|---|"]
    for model in shown:
        overall = distribution[model]["overall"]
        origins = ", ".join(f"{v['coverage_80']:.3f}" for v in distribution[model]["per_origin"].values())
        base = forecast.get(model) or {}
        held = [c["held"] for c in base.get("all", [])]
        star = " (champion)" if model == champion else (" (fallback)" if model == fallback else "")
        out.append(f"| {model}{star} | {overall['coverage_80']:.3f} | {origins} | {overall['mean_width_80']:,.1f} | "
                   f"{overall['crps']:,.1f} | {sum(held)} of {len(held)} origins | "
                   f"{base.get('median_width_share_all', float('nan')):.2f} |")
    return "\n".join(out)


def _load(name: str) -> dict:
    return json.loads((REPO / "benchmarks" / name).read_text())


def generated_blocks() -> dict[str, str]:
    """Every generated table by its block name."""
    return {
        "contract": contract_table(),
        "scale": scale_table([_load(name) for name in SCALE_RUNS]),
        "accuracy": "\n\n".join(accuracy_table(_load(name), f"benchmarks/{name}") for name in ACCURACY_RUNS),
        "intervals": "\n\n".join(intervals_table(_load(name), f"benchmarks/{name}") for name in ACCURACY_RUNS),
    }


BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(\n<!-- end generated: (?P=name) -->)", re.S)


def render(text: str, blocks: dict[str, str]) -> str:
    """The page with each generated block replaced by its current table."""
    def fill(match: re.Match) -> str:
        if match["name"] not in blocks:
            raise KeyError(f"unknown generated block {match['name']!r}; known: {', '.join(blocks)}")
        return match.group(1) + blocks[match["name"]] + match.group(4)
    return BLOCK.sub(fill, text)


def stale_pages(docs: Path = REPO / "docs", write: bool = False) -> list[Path]:
    """Pages whose generated tables differ from their sources (rewritten when `write`)."""
    blocks, stale = generated_blocks(), []
    for page in sorted(docs.glob("*.md")):
        text = page.read_text()
        fresh = render(text, blocks)
        if fresh != text:
            stale.append(page)
            if write:
                page.write_text(fresh)
    return stale
