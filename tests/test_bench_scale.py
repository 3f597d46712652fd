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
