"""The accuracy report: one self-contained HTML page (inline SVG charts, no network). It leads with the
champion against the baselines (intervals, best value per column), then metric definitions, the champion
by slice, readable gain curves, calibration, deciles, the champion's SHAP summary and the BTYD plots
lifetimes users know (P(alive) and expected-purchases matrices, calibration vs holdout purchases)."""

from __future__ import annotations

import html
import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, smaller, drawn in the page font
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BASELINES = ("last_period", "last_period_scaled", "heuristic", "bgnbd_gg", "paretonbd_gg")
REFERENCES = ("oracle", "bayes_ceiling")  # not models: what is attainable with hidden or full knowledge
METRICS = (("deviance", "Poisson deviance", "{:,.1f}"), ("normalized_gini", "normalized Gini", "{:.3f}"),
           ("calibration_ratio", "calibration", "{:.3f}"), ("decile_calibration_error", "decile calibration error",
                                                             "{:.3f}"), ("mae", "MAE", "{:,.1f}"))
LOWER_IS_BETTER = {"deviance", "mae", "decile_calibration_error"}
DEFINITIONS = {
    "Poisson deviance": "mean Poisson deviance of the predicted revenue per customer: a proper score for a "
                        "predicted mean (lower is better), the primary criterion; predictions are floored at a "
                        "thousandth of the mean actual value.",
    "decile calibration error": "sum over the ten predicted-rank deciles of |predicted - actual| revenue, over "
                                "total actual revenue: 0 when every decile is calibrated.",
    "MAE": "mean absolute error of the predicted revenue per customer over the horizon, in the shop's "
           "currency; reported, not decided on: it rewards predicting the median, 0 for most customers.",
    "normalized Gini": "how well the ranking by prediction concentrates actual revenue: the Gini of the gain "
                       "curve divided by the Gini of the perfect ranking (1 = perfect order, 0 = random); "
                       "higher is better. It is what targeting the top customers depends on.",
    "calibration": "total predicted / total actual revenue over the horizon; 1 is right, 0.9 means the "
                   "budget would be planned 10% short.",
    "interval": "95% paired bootstrap interval, resampling customers and origins (the same resample for every "
                "model), of the metric and of its difference to last year's spend; a difference whose interval "
                "includes zero is a tie.",
    "last_period_scaled": "baseline: last year's spend times one factor fitted on the training rows (out of time).",
    "paretonbd_gg": "baseline: Pareto/NBD expected purchases x Gamma-Gamma expected order value.",
    "last_period": "baseline: each customer's spend in the last year, scaled to the horizon.",
    "heuristic": "baseline: recent average order value x recent order rate.",
    "bgnbd_gg": "baseline: BG/NBD expected purchases x Gamma-Gamma expected order value (lifetimes).",
    "oracle / bayes_ceiling": "references on synthetic data only: the oracle knows which customers are "
                              "still alive; the Bayes ceiling is the best any model can do from the data.",
}
CHAMPION_COLOUR = "#c0392b"
BASELINE_COLOURS = {"last_period": "#1f77b4", "last_period_scaled": "#17becf", "heuristic": "#2ca02c", "bgnbd_gg": "#9467bd",
                    "paretonbd_gg": "#8c564b"}


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def model_order(names, champion: str | None) -> list[str]:
    """Champion first, then the baselines, the other candidates, and the references last."""
    names = list(names)
    first = [n for n in (champion, *BASELINES) if n in names]
    last = [n for n in REFERENCES if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def _line_style(label: str, champion: str | None) -> dict:
    if label == champion:
        return {"color": CHAMPION_COLOUR, "lw": 2.8, "zorder": 5, "label": f"{label} (champion)"}
    if label in BASELINE_COLOURS:
        return {"color": BASELINE_COLOURS[label], "lw": 1.6, "ls": "--", "zorder": 4, "label": f"{label} (baseline)"}
    if label in REFERENCES or label == "perfect":
        return {"color": "black", "lw": 1.0, "ls": (0, (1, 2)) if label != "perfect" else "-", "alpha": 0.6,
                "zorder": 3, "label": label}
    return {"color": "#999999", "lw": 0.9, "alpha": 0.7, "zorder": 2, "label": label}


def lorenz_chart(y_true: np.ndarray, predictions: dict[str, np.ndarray], champion: str | None = None,
                 zoom_share: float = 0.2) -> str:
    """Gain curves: the whole population and, beside it, the top `zoom_share` of customers where the
    models differ. The champion is drawn thick and red, baselines dashed, other candidates grey."""
    y_true = np.asarray(y_true, float)
    share = np.arange(1, len(y_true) + 1) / len(y_true)
    fig, (whole, top) = plt.subplots(1, 2, figsize=(11, 4.5))
    curves = {"perfect": y_true, **predictions}
    for label in ["perfect", *model_order(predictions, champion)]:
        order = np.argsort(-np.asarray(curves[label], float), kind="mergesort")
        gain = np.cumsum(y_true[order]) / max(y_true.sum(), 1e-12)
        style = _line_style(label, champion)
        whole.plot(share, gain, **style)
        keep = share <= zoom_share
        top.plot(share[keep], gain[keep], **{**style, "label": None})
    whole.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="random")
    whole.set(xlabel="share of customers, ranked by prediction", ylabel="share of actual revenue",
              title="Gain (Lorenz) curves")
    top.set(xlabel="share of customers (top of the ranking)", ylabel="share of actual revenue",
            title=f"The top {zoom_share:.0%} of customers")
    for ax in (whole, top):
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    whole.legend(fontsize=8, loc="lower right")
    return _svg(fig)


def decile_chart(name: str, deciles: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = deciles["bin"].to_numpy()
    ax.bar(x - 0.2, deciles["predicted_mean"], width=0.4, label="predicted")
    ax.bar(x + 0.2, deciles["actual_mean"], width=0.4, label="actual")
    ax.set(xlabel="decile of predicted value (10 = highest)", ylabel="mean revenue", title=f"Deciles: {name}")
    ax.legend(fontsize=8)
    return _svg(fig)


def calibration_chart(deciles: dict[str, pd.DataFrame], champion: str | None = None) -> str:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = 0.0
    for name in model_order(deciles, champion):
        d = deciles[name]
        ax.plot(d["predicted_mean"], d["actual_mean"], marker="o", ms=3, **_line_style(name, champion))
        top = max(top, d["predicted_mean"].max(), d["actual_mean"].max())
    ax.plot([0, top], [0, top], "k:", label="calibrated")
    ax.set(xlabel="mean predicted per decile", ylabel="mean actual per decile", title="Calibration by decile")
    ax.legend(fontsize=8)
    return _svg(fig)


def coverage_chart(by_decile: dict[str, dict], champion: str | None = None, band=(0.75, 0.85)) -> str:
    """Coverage of each model's 80% interval by decile of its prediction (out of time), with the gate's band."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.axhspan(*band, color="#ddd", label=f"gate band {band[0]}-{band[1]}")
    ax.axhline(0.8, color="black", lw=0.8, ls=":")
    for name in model_order(by_decile, champion):
        deciles = by_decile[name]
        x = [int(d) for d in deciles]
        ax.plot(x, [deciles[d]["coverage_80"] for d in deciles], marker="o", ms=3, **_line_style(name, champion))
    ax.set(xlabel="decile of predicted value (10 = highest)", ylabel="share inside the 80% interval",
           title="80% interval coverage by decile", ylim=(0, 1))
    ax.legend(fontsize=8)
    return _svg(fig)


def fan_chart(checks: list[dict], now: dict | None = None, title: str = "The base's revenue: forecast and 80% interval") -> str:
    """The whole base's predicted total with its 80% interval at each backtest origin (built from the other
    origins) and what was realised, then the current cutoff's forecast."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [c["origin"] for c in checks]
    x = np.arange(len(checks))
    if checks:
        ax.fill_between(x, [c["low"] for c in checks], [c["high"] for c in checks], color="#9ecae1", alpha=0.6,
                        label="80% interval (from the other origins)")
        ax.plot(x, [c["predicted"] for c in checks], color=CHAMPION_COLOUR, marker="o", label="predicted total")
        ax.plot(x, [c["actual"] for c in checks], "ks", label="realised total")
    if now is not None and now.get("low") is not None:
        labels.append(f"{now['cutoff']} (now)")
        ax.errorbar([len(checks)], [now["predicted"]], yerr=[[now["predicted"] - now["low"]], [now["high"] - now["predicted"]]],
                    fmt="D", color=CHAMPION_COLOUR, capsize=6, label="this cutoff's forecast")
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set(ylabel="revenue over the horizon", title=title)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(fontsize=8)
    return _svg(fig)


def interval_table(distribution: dict, name: str) -> str:
    """One model's 80% interval per tier: coverage, mean width and CRPS (HTML)."""
    rows = "".join(f"<tr><td>{html.escape(tier)}</td><td>{v['rows']:,}</td><td>{_fmt(v['coverage_80'], '{:.3f}')}</td>"
                   f"<td>{_fmt(v['mean_width_80'], '{:,.0f}')}</td><td>{_fmt(v['crps'], '{:,.1f}')}</td></tr>"
                   for tier, v in distribution.get("by_tier", {}).items())
    origins = "".join(f"<tr><td>{html.escape(o)}</td><td>{v['rows']:,}</td><td>{_fmt(v['coverage_80'], '{:.3f}')}</td>"
                      f"<td>{_fmt(v['mean_width_80'], '{:,.0f}')}</td><td>{_fmt(v['crps'], '{:,.1f}')}</td></tr>"
                      for o, v in distribution.get("per_origin", {}).items())
    head = "<tr><th>{}</th><th>rows</th><th>coverage of the 80% interval</th><th>mean width</th><th>CRPS</th></tr>"
    return (f'<table class="intervals" data-model="{html.escape(name)}">{head.format("origin")}{origins}</table>'
            f'<table class="intervals-by-tier" data-model="{html.escape(name)}">{head.format("tier")}{rows}</table>')


def shap_summary_chart(model, frame: pd.DataFrame, max_rows: int = 5000, top: int = 15) -> str:
    """Mean |contribution| per input, in currency relative to the average customer (last year's spend as
    its own term for the offset model)."""
    sample = frame.sample(min(len(frame), max_rows), random_state=0)
    explained = model.explain(sample) if hasattr(model, "explain") else model.contributions(sample)
    contributions = explained.abs().mean().sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(contributions) + 1))
    ax.barh(contributions.index, contributions.to_numpy(), color=CHAMPION_COLOUR)
    unit = "currency, vs the average customer" if hasattr(model, "explain") else "log margin"
    ax.set(xlabel=f"mean |contribution| ({unit})", title=f"SHAP summary: {getattr(model, 'name', 'model')}")
    return _svg(fig)


FREQUENCY_AXIS = "repeat purchases (frequency)"
RECENCY_AXIS = "weeks from first to last purchase (recency)"


def btyd_charts(frame: pd.DataFrame, horizon_days: int) -> list[tuple[str, str]]:
    """The lifetimes plots of a BG/NBD fit on one cutoff's customers (time in weeks): P(alive) and
    expected purchases in the horizon by frequency and recency, and calibration-period purchases against
    the purchases actually made in the horizon (needs `future_orders_count`)."""
    from lifetimes.plotting import (plot_calibration_purchases_vs_holdout_purchases,
                                    plot_frequency_recency_matrix, plot_probability_alive_matrix)

    from models_ml.btyd import DAYS_PER_WEEK, fit_bgnbd

    x = frame["btyd_frequency"].to_numpy(float)
    t_x = frame["btyd_recency"].to_numpy(float) / DAYS_PER_WEEK
    T = frame["btyd_t"].to_numpy(float) / DAYS_PER_WEEK
    fitter = fit_bgnbd(x, t_x, T, penalizer=0.001)
    horizon_weeks = horizon_days / DAYS_PER_WEEK
    limits = {"max_frequency": max(int(np.percentile(x, 99)), 2), "max_recency": max(int(np.ceil(T.max())), 2)}
    charts = []
    fig = plt.figure(figsize=(6, 4.5))
    plot_probability_alive_matrix(fitter, **limits)
    plt.gca().set(xlabel=FREQUENCY_AXIS, ylabel=RECENCY_AXIS)
    charts.append(("BTYD: P(alive) by frequency and recency", _svg(fig)))
    fig = plt.figure(figsize=(6, 4.5))
    plot_frequency_recency_matrix(fitter, T=horizon_weeks, **limits,
                                  title=f"Expected purchases in the next {horizon_days} days")
    plt.gca().set(xlabel=FREQUENCY_AXIS, ylabel=RECENCY_AXIS)
    charts.append(("BTYD: expected purchases by frequency and recency", _svg(fig)))
    if "future_orders_count" in frame:
        holdout = pd.DataFrame({"frequency_cal": x, "recency_cal": t_x, "T_cal": T,
                                "frequency_holdout": frame["future_orders_count"].to_numpy(float),
                                "duration_holdout": horizon_weeks})
        fig, ax = plt.subplots(figsize=(6, 4.5))  # pandas draws on a new figure unless given the axes
        plot_calibration_purchases_vs_holdout_purchases(fitter, holdout, n=7, ax=ax, marker="o")
        ax.legend(["actual purchases in the horizon", "BG/NBD expected purchases"], fontsize=8)
        ax.set(xlabel="repeat purchases before the cutoff", ylabel="mean purchases in the horizon",
               title="BG/NBD: expected vs actual purchases in the horizon")
        charts.append(("BTYD: calibration vs holdout purchases", _svg(fig)))
    return charts


def _fmt(value, pattern: str) -> str:
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else pattern.format(value)


def best_per_metric(models: dict, names: list[str]) -> dict[str, set[str]]:
    """For each headline metric, the model(s) with the best value among `names`: lowest MAE, highest
    Gini, calibration nearest 1."""
    best = {}
    for metric, _, _ in METRICS:
        values = {n: models[n].get(metric) for n in names if models[n].get(metric) is not None}
        values = {n: v for n, v in values.items() if np.isfinite(v)}
        if not values:
            best[metric] = set()
            continue
        score = {"normalized_gini": lambda v: -v, "calibration_ratio": lambda v: abs(v - 1)}.get(
            metric, lambda v: v)  # the rest: lower is better
        target = min(score(v) for v in values.values())
        best[metric] = {n for n, v in values.items() if np.isclose(score(v), target, rtol=0, atol=1e-12)}
    return best


def _metric_cell(summary: dict, name: str, metric: str, pattern: str, best: bool) -> str:
    value = summary["models"][name].get(metric)
    ci = summary["ci"].get(name, {}).get(metric)
    diff = summary["ci"].get(name, {}).get(f"{metric}_diff_vs_last_period")
    text = _fmt(value, pattern)
    if ci:
        text += f"<br><small>[{_fmt(ci[0], pattern)}, {_fmt(ci[1], pattern)}]</small>"
    if diff:  # calibration: nearer 1 is better, so its difference has no colour of its own
        lower = metric in LOWER_IS_BETTER
        cls = "" if metric == "calibration_ratio" else (
            "better" if (diff[1] < 0 if lower else diff[0] > 0) else (
                "worse" if (diff[0] > 0 if lower else diff[1] < 0) else "tie"))
        text += f'<br><small class="{cls}">vs last_period [{_fmt(diff[0], pattern)}, {_fmt(diff[1], pattern)}]</small>'
    return f'<td class="best">{text}</td>' if best else f"<td>{text}</td>"


def _role(name: str, champion: str) -> str:
    if name == champion:
        return " &#9733; champion"
    if name in BASELINES:
        return " <small>(baseline)</small>"
    if name in REFERENCES:
        return " <small>(reference, not a model)</small>"
    return ""


def metrics_table(summary: dict) -> str:
    """Champion first, then baselines, candidates and references; the best model per column (among the
    models, not the references) in bold."""
    champion = summary["champion"]
    order = model_order(summary["models"], champion)
    best = best_per_metric(summary["models"], [n for n in order if n not in REFERENCES])
    header = "".join(f"<th>{label}</th>" for _, label, _ in METRICS)
    rows = "".join(
        f'<tr class="{"champion" if name == champion else "reference" if name in REFERENCES else ""}">'
        f"<th>{html.escape(name)}{_role(name, champion)}</th>"
        + "".join(_metric_cell(summary, name, m, p, name in best[m]) for m, _, p in METRICS) + "</tr>"
        for name in order)
    return f'<table id="metrics"><tr><th>model</th>{header}</tr>{rows}</table>'


def slice_tables(summary: dict) -> str:
    """Per slice value: the champion's and last year's spend's calibration and Gini side by side, and the
    champion's Gini gap to its overall Gini (where a slice is served worse)."""
    champion = summary["champion"]
    overall = summary["models"][champion].get("normalized_gini")
    reference = summary["slices"].get("last_period", {})
    parts = []
    for column, table in summary["slices"].get(champion, {}).items():
        rows = "".join(
            f"<tr><td>{html.escape(value)}</td><td>{s['rows']:,}</td>"
            f"<td>{_fmt(s['calibration_ratio'], '{:.3f}')}</td>"
            f"<td>{_fmt(reference.get(column, {}).get(value, {}).get('calibration_ratio'), '{:.3f}')}</td>"
            f"<td>{_fmt(s['normalized_gini'], '{:.3f}')}</td>"
            f"<td>{_fmt(reference.get(column, {}).get(value, {}).get('normalized_gini'), '{:.3f}')}</td>"
            f"<td>{_fmt(s['normalized_gini'] - overall if overall is not None else None, '{:+.3f}')}</td></tr>"
            for value, s in table.items())
        parts.append(
            f'<table class="slices" data-slice="{html.escape(column)}"><tr><th>{html.escape(column)}</th><th>rows</th>'
            f"<th>calibration<br>{html.escape(champion)}</th><th>calibration<br>last_period</th>"
            f"<th>Gini<br>{html.escape(champion)}</th><th>Gini<br>last_period</th><th>Gini vs overall</th></tr>{rows}</table>")
    return "".join(parts) or "<p>No slice column has two values with at least 100 customers.</p>"


def definitions() -> str:
    return '<dl id="definitions">' + "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in DEFINITIONS.items()) + "</dl>"


def write_report(path: Path, summary: dict, result, champion_model, champion_test: pd.DataFrame) -> Path:
    """Write the HTML report of a bench run (protocol.BacktestResult + the bench summary); a script marks
    `data-charts-drawn` once the browser has laid the charts out."""
    champion = summary["champion"]
    y = result.rows["actual"].to_numpy(float)
    deciles = {n: pd.DataFrame(d) for n, d in summary["deciles"].items()}
    shown = [n for n in (champion, *BASELINES) if n in deciles]  # the rest are in the JSON
    charts = [("Gain curves", lorenz_chart(y, result.predictions, champion)),
              ("Calibration", calibration_chart({n: deciles[n] for n in shown}, champion))]
    charts += [(f"Deciles: {n}", decile_chart(n, deciles[n])) for n in shown]
    charts.append((f"SHAP summary: {champion} (champion)", shap_summary_chart(champion_model, champion_test)))
    distributions = summary.get("distribution", {})
    if distributions:
        charts.append(("Coverage by decile", coverage_chart({n: distributions[n]["by_decile"] for n in shown
                                                              if n in distributions}, champion)))
    if summary.get("base_forecast", {}).get(champion):
        charts.append((f"Fan chart: the base's revenue ({champion})", fan_chart(summary["base_forecast"][champion]["all"])))
    charts += btyd_charts(champion_test, summary["backtest_horizon_days"])
    figures = "".join(f'<figure class="chart" data-title="{html.escape(t)}">{svg}<figcaption>{html.escape(t)}</figcaption></figure>'
                      for t, svg in charts)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CLV accuracy: {html.escape(summary['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} .charts{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{margin:0}} figure svg{{max-width:560px;height:auto}} figure[data-title^="Gain"] svg{{max-width:1100px}}
.better{{color:#070}} .worse{{color:#a00}} td.best{{font-weight:bold;background:#eef7ee}}
tr.champion th{{color:{CHAMPION_COLOUR}}} tr.reference{{color:#777}} dt{{font-weight:bold}} dd{{margin:0 0 .5em 1em}}</style></head>
<body data-charts-expected="{len(charts)}">
<h1>CLV model accuracy: {html.escape(summary['dataset'])}</h1>
<p>{html.escape(summary['note'])}. Strict rolling-origin backtest at {summary['backtest_horizon_days']} days
(prediction horizon {summary['horizon_days']} days{'; ' + html.escape(summary['protocol_note']) if summary['protocol_note'] else ''}):
origins {html.escape(', '.join(summary['origins']))}, each model fit only on cutoffs whose label window ends by the
origin; {summary['rows']:,} customer rows ({summary['customers']:,} customers). Metrics are the mean over origins;
brackets: 95% paired bootstrap intervals ({summary['bootstrap_resamples']} resamples of customers) of the metric and
of its difference to last year's spend (green better, red worse, otherwise a tie). Bold: the best model in the column.</p>
<h2>Champion against the baselines</h2>
{metrics_table(summary)}
<h2>What the numbers mean</h2>
{definitions()}
<h2>How sure: the champion's 80% intervals, checked out of time</h2>
{interval_table(distributions.get(champion, {}), champion) if distributions else "<p>No predictive distribution measured.</p>"}
<h2>Champion ({html.escape(champion)}) by slice</h2>
{slice_tables(summary)}
<h2>Charts</h2>
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
