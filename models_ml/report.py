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

from models_ml.features import TARGET  # noqa: E402

METRIC_COLUMNS = ["mae", "rmse", "normalized_gini", "spearman", "decile_mape", "top10_capture", "calibration_ratio"]


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


def calibration_chart(results) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = 0.0
    for name, result in results.items():
        d = result.deciles
        ax.plot(d["predicted_mean"], d["actual_mean"], "o-", ms=3, label=name)
        top = max(top, d["predicted_mean"].max(), d["actual_mean"].max())
    ax.plot([0, top], [0, top], "k:", label="calibrated")
    ax.set(xlabel="mean predicted per decile", ylabel="mean actual per decile", title="Calibration")
    ax.legend(fontsize=8)
    return _svg(fig)


def shap_summary_chart(model, frame: pd.DataFrame, max_rows: int = 5000, top: int = 15) -> str:
    sample = frame.sample(min(len(frame), max_rows), random_state=0)
    contributions = model.contributions(sample).abs().mean().sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(contributions) + 1))
    ax.barh(contributions.index, contributions.to_numpy())
    ax.set(xlabel="mean |SHAP value| (log-revenue margin, Tweedie link)", title=f"SHAP summary: {model.name}")
    return _svg(fig)


def write_report(path: Path, summary: dict, results, test: pd.DataFrame) -> Path:
    """Write the HTML report; a script marks `data-charts-drawn` once the browser has laid them out."""
    y = test[TARGET].to_numpy(float)
    charts = [("Lorenz curves", lorenz_chart(y, {n: r.predictions for n, r in results.items()})),
              ("Calibration", calibration_chart(results))]
    charts += [(f"Deciles: {n}", decile_chart(n, r.deciles)) for n, r in results.items()]
    tree_model = next((r.model for n, r in results.items() if n in ("xgboost_offset", "hybrid", "xgboost")), None)
    if tree_model is not None:
        charts.append(("SHAP summary", shap_summary_chart(tree_model, test)))
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>" + "".join(
            f"<td>{'' if metrics.get(c) is None else f'{metrics[c]:,.3f}'}</td>" for c in METRIC_COLUMNS) + "</tr>"
        for name, metrics in summary["models"].items())
    figures = "".join(f'<figure class="chart" data-title="{html.escape(t)}">{svg}<figcaption>{html.escape(t)}</figcaption></figure>'
                      for t, svg in charts)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CLV accuracy: {html.escape(summary['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} .charts{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{margin:0}} figure svg{{max-width:560px;height:auto}}</style></head>
<body data-charts-expected="{len(charts)}">
<h1>CLV model accuracy: {html.escape(summary['dataset'])}</h1>
<p>Temporal holdout: trained on cutoffs {html.escape(', '.join(summary['train_cutoffs']) or 'none')},
tested at {summary['test_cutoff']} on {summary['customers_test']:,} customers, horizon {summary['horizon_days']} days.
{html.escape(summary['note'])}.</p>
<table><tr><th>model</th>{''.join(f'<th>{c}</th>' for c in METRIC_COLUMNS)}</tr>{rows}</table>
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
