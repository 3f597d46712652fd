"""The accuracy report: one self-contained HTML page (inline SVG charts, no network) with the metrics
table, Lorenz curves, decile charts, the calibration plot and a SHAP summary."""

from __future__ import annotations

import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402




def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def lorenz_chart(y_true: np.ndarray, predictions: dict[str, np.ndarray]) -> str:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    share = np.arange(1, len(y_true) + 1) / len(y_true)
    for label, ranking in [("perfect", y_true), *predictions.items()]:
        order = np.argsort(-np.asarray(ranking, float), kind="mergesort")
        ax.plot(share, np.cumsum(y_true[order]) / y_true.sum(), label=label, lw=2 if label == "perfect" else 1.3)
    ax.plot([0, 1], [0, 1], "k:", label="random")
    ax.set(xlabel="share of customers, ranked by prediction", ylabel="share of actual revenue",
           title="Gain (Lorenz) curves")
    ax.legend(fontsize=8)
    return _svg(fig)


def decile_chart(name: str, deciles: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = deciles["bin"].to_numpy()
    ax.bar(x - 0.2, deciles["predicted_mean"], width=0.4, label="predicted")
    ax.bar(x + 0.2, deciles["actual_mean"], width=0.4, label="actual")
    ax.set(xlabel="decile of predicted value (10 = highest)", ylabel="mean revenue", title=f"Deciles: {name}")
    ax.legend(fontsize=8)
    return _svg(fig)


def calibration_chart(deciles: dict[str, pd.DataFrame]) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = 0.0
    for name, d in deciles.items():
        ax.plot(d["predicted_mean"], d["actual_mean"], "o-", ms=3, label=name)
        top = max(top, d["predicted_mean"].max(), d["actual_mean"].max())
    ax.plot([0, top], [0, top], "k:", label="calibrated")
    ax.set(xlabel="mean predicted per decile", ylabel="mean actual per decile", title="Calibration")
    ax.legend(fontsize=8)
    return _svg(fig)


def shap_summary_chart(model, frame: pd.DataFrame, max_rows: int = 5000, top: int = 15) -> str:
    """Mean |contribution| per input, in currency relative to the average customer (last year's spend as
    its own term for the offset model)."""
    sample = frame.sample(min(len(frame), max_rows), random_state=0)
    explained = model.explain(sample) if hasattr(model, "explain") else model.contributions(sample)
    contributions = explained.abs().mean().sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(contributions) + 1))
    ax.barh(contributions.index, contributions.to_numpy())
    ax.set(xlabel="mean |contribution| (currency, vs the average customer)", title=f"SHAP summary: {model.name} (champion)")
    return _svg(fig)


def _fmt(value, pattern: str) -> str:
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else pattern.format(value)


def _metric_cell(summary: dict, name: str, metric: str, pattern: str) -> str:
    value = summary["models"][name].get(metric)
    ci = summary["ci"].get(name, {}).get(metric)
    diff = summary["ci"].get(name, {}).get(f"{metric}_diff_vs_last_period")
    text = _fmt(value, pattern)
    if ci:
        text += f"<br><small>[{_fmt(ci[0], pattern)}, {_fmt(ci[1], pattern)}]</small>"
    if diff:  # calibration: nearer 1 is better, so its difference has no colour of its own
        cls = "" if metric == "calibration_ratio" else (
            "better" if (diff[1] < 0 if metric == "mae" else diff[0] > 0) else (
                "worse" if (diff[0] > 0 if metric == "mae" else diff[1] < 0) else "tie"))
        text += f'<br><small class="{cls}">vs last_period [{_fmt(diff[0], pattern)}, {_fmt(diff[1], pattern)}]</small>'
    return f"<td>{text}</td>"


def write_report(path: Path, summary: dict, result, champion_model, champion_test: pd.DataFrame) -> Path:
    """Write the HTML report of a bench run (protocol.BacktestResult + the bench summary); a script marks
    `data-charts-drawn` once the browser has laid the charts out."""
    y = result.rows["actual"].to_numpy(float)
    deciles = {n: pd.DataFrame(d) for n, d in summary["deciles"].items()}
    charts = [("Lorenz curves", lorenz_chart(y, result.predictions)), ("Calibration", calibration_chart(deciles))]
    charts += [(f"Deciles: {n}", decile_chart(n, d)) for n, d in deciles.items()]
    charts.append(("SHAP summary", shap_summary_chart(champion_model, champion_test)))
    metrics = (("mae", "{:,.1f}"), ("normalized_gini", "{:.3f}"), ("calibration_ratio", "{:.3f}"))
    rows = "".join(
        f"<tr><th>{html.escape(name)}{' &#9733; champion' if name == summary['champion'] else ''}</th>"
        + "".join(_metric_cell(summary, name, m, p) for m, p in metrics) + "</tr>"
        for name in summary["models"])
    slice_rows = "".join(
        f"<tr><td>{html.escape(column)}</td><td>{html.escape(value)}</td><td>{s['rows']:,}</td>"
        f"<td>{s['calibration_ratio']:.3f}</td><td>{s['normalized_gini']:.3f}</td></tr>"
        for column, table in summary["slices"].get(summary["champion"], {}).items() for value, s in table.items())
    figures = "".join(f'<figure class="chart" data-title="{html.escape(t)}">{svg}<figcaption>{html.escape(t)}</figcaption></figure>'
                      for t, svg in charts)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CLV accuracy: {html.escape(summary['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} .charts{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{margin:0}} figure svg{{max-width:560px;height:auto}} .better{{color:#070}} .worse{{color:#a00}}</style></head>
<body data-charts-expected="{len(charts)}">
<h1>CLV model accuracy: {html.escape(summary['dataset'])}</h1>
<p>{html.escape(summary['note'])}. Strict rolling-origin backtest at {summary['backtest_horizon_days']} days
(prediction horizon {summary['horizon_days']} days{'; ' + html.escape(summary['protocol_note']) if summary['protocol_note'] else ''}):
origins {html.escape(', '.join(summary['origins']))}, each model fit only on cutoffs whose label window ends by the
origin; {summary['rows']:,} customer rows ({summary['customers']:,} customers). Metrics are the mean over origins;
brackets: 95% paired bootstrap intervals (resampling customers, {summary['bootstrap_resamples']} resamples), and of
the difference to last year's spend (MAE and Gini: green better, red worse, otherwise a tie; calibration is
best nearest 1).</p>
<table><tr><th>model</th><th>MAE</th><th>normalized Gini</th><th>calibration (predicted / actual)</th></tr>{rows}</table>
<h2>Champion ({html.escape(summary['champion'])}) by slice</h2>
<table><tr><th>slice</th><th>value</th><th>rows</th><th>calibration</th><th>normalized Gini</th></tr>{slice_rows}</table>
<div class="charts">{figures}</div>
<script>
window.addEventListener("load", () => {{
  const drawn = [...document.querySelectorAll("figure.chart svg")].filter(svg => {{
    const box = svg.getBoundingClientRect();
    return box.width > 50 && box.height > 50 && svg.querySelectorAll("path").length > 3;
  }});
  document.body.dataset.chartsDrawn = String(drawn.length);
}});
</script>
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
