"""`clv bench scale --weeks K`: week 1 lands two years and trains; each further week lands seven more days
and runs the cycle on the kept snapshots. The JSON keeps week 1's numbers at the top and one entry per week."""

from __future__ import annotations

import json

from clv.cli import main


def test_later_weeks_land_only_the_new_days_and_build_only_the_new_cutoff(tmp_path, clv_home):
    path = tmp_path / "scale.json"
    assert main(["bench", "scale", "--customers", "2000", "--weeks", "2", "--json", str(path),
                 "--workdir", str(tmp_path / "work")]) == 0
    result = json.loads(path.read_text())
    first, second = result["weeks"]
    assert result["customers"] == 2000 and len(result["weeks"]) == 2
    assert result["weekly_cycle_seconds"] == first["weekly_cycle_seconds"]  # top level: week 1, as before
    assert {"land", "validate", "features", "train", "register", "score", "reasons", "monitor"} <= set(first["stages"])
    assert {"train", "register"}.isdisjoint(second["stages"])  # the champion serves; nothing retrains
    assert second["rows_landed"] < 0.05 * first["rows_landed"]  # seven days, not the history again
    assert second["cutoffs_built"] == 1 and second["cutoffs_kept"] == first["cutoffs_kept"] + 1
    assert second["customers_scored"] >= first["customers_scored"]
    assert all(w["peak_rss_mb"] > 0 and w["weekly_cycle_seconds"] > 0 for w in result["weeks"])
    assert result["later_weeks"]["mean_cycle_seconds"] == second["weekly_cycle_seconds"]
    # where the feature build's time went: customer_features and every model it reads, slowest first
    models = second["feature_model_seconds"]
    assert {"customer_features", "int_features__rfm", "int_order_versions", "int_customer_sessions"} <= set(models)
    assert "customer_labels" not in models and list(models.values()) == sorted(models.values(), reverse=True)
    assert max(models.values()) <= second["feature_build_seconds"] + 0.01


def spy_on_pipeline_steps(monkeypatch) -> list[str]:
    """Record every `clv.pipeline` step called (by name), calling it through."""
    from clv import pipeline

    called: list[str] = []
    for name in ("land", "check_freshness", "build", "train", "register_and_gate", "scoring_population",
                 "recent_orders", "served_model", "predict", "explain", "score_table", "publish", "export"):
        step = getattr(pipeline, name)

        def spy(*args, _step=step, _name=name, **kwargs):
            called.append(_name)
            return _step(*args, **kwargs)
        monkeypatch.setattr(pipeline, name, spy)
    return called


def test_the_benchmark_times_the_steps_the_weekly_flow_runs(tmp_path, clv_home, monkeypatch):
    """`clv bench scale` calls the same pipeline steps as the weekly flow on the same shop, in its own
    project home (the caller's CLV_HOME is left as it was)."""
    from flows.weekly import weekly_clv_pipeline

    bench_steps = spy_on_pipeline_steps(monkeypatch)
    work = tmp_path / "work"
    assert main(["bench", "scale", "--customers", "1500", "--json", str(tmp_path / "s.json"),
                 "--workdir", str(work)]) == 0
    import os
    assert os.environ["CLV_HOME"] == str(clv_home)
    assert (work / "scale-1500-home" / "exports").is_dir()  # published and exported, as the flow does

    flow_steps = spy_on_pipeline_steps(monkeypatch)
    week = {entity: str(work / "weeks-1500" / f"week1-{entity}.parquet") for entity in ("orders", "customers", "events")}
    weekly_clv_pipeline(**week, warehouse=str(tmp_path / "flow.duckdb"))
    assert set(bench_steps) == set(flow_steps)
    assert {"land", "build", "train", "register_and_gate", "predict", "publish", "export"} <= set(flow_steps)


def test_reused_data_too_short_for_the_weeks_asked_says_what_to_generate(tmp_path):
    """`--data` with two years of a `clv synth` shop covers week 1 only: asking for two weeks stops before
    anything runs, naming the end of the data and the `clv synth --days` that covers them."""
    import pytest

    from clv.bench import WEEK1_DAYS, _weekly_slices, bench_scale
    from clv.synth import SynthConfig, write_synthetic

    data = tmp_path / "synth"
    write_synthetic(SynthConfig(300, seed=3, days=WEEK1_DAYS), data)
    assert len(_weekly_slices(data, tmp_path / "one-week", 1)) == 1  # enough for one week
    with pytest.raises(ValueError, match=rf"orders end on .* need data through .*clv synth --days {WEEK1_DAYS + 7}"):
        bench_scale(300, tmp_path / "scale.json", tmp_path / "work", data_dir=data, weeks=2)
    assert not (tmp_path / "scale.json").exists()
