"""One warehouse interface (clv/warehouse/engines.py), the same behaviour on the DuckDB file and on the
real PostgreSQL server: append with new columns, read with `?` parameters, a transaction that commits
or rolls back as a whole, and the checks callers rely on."""

from __future__ import annotations

import pandas as pd
import pytest

from clv.warehouse.engines import TARGETS, open_warehouse, resolve_target


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path):
    if request.param == "duckdb":
        return open_warehouse("duckdb", tmp_path / "w.duckdb")
    request.getfixturevalue("postgres_database")
    return open_warehouse("postgres")


def test_append_creates_the_table_then_adds_new_columns_and_reads_back_with_parameters(warehouse):
    warehouse.append("monitor_log", pd.DataFrame({"week": [1], "status": ["ok"]}))
    warehouse.append("monitor_log", pd.DataFrame({"week": [2], "status": ["alert"], "psi": [0.31]}))
    assert warehouse.has("monitor_log") and not warehouse.has("no_such_table")
    rows = warehouse.read("select week, status, psi from monitor_log where week >= ? order by week", [1])
    assert rows["status"].tolist() == ["ok", "alert"]
    assert pd.isna(rows["psi"].iloc[0]) and rows["psi"].iloc[1] == pytest.approx(0.31)


def test_a_pass_or_fail_column_reads_back_as_booleans(warehouse):
    """A gate's result (shadow_runs.passed) is a boolean on every engine, not the text 'false'."""
    warehouse.append("gate_log", pd.DataFrame({"gate": ["shadow", "shift"], "passed": [True, False]}))
    warehouse.append("gate_log", pd.DataFrame([{"gate": "again", "passed": False}]))
    rows = warehouse.read("select gate, passed from gate_log where passed order by gate")
    assert rows["gate"].tolist() == ["shadow"] and rows["passed"].tolist() == [True]


def test_a_transaction_commits_as_a_whole_or_not_at_all(warehouse):
    warehouse.append("ledger", pd.DataFrame({"entry": ["a", "b", "c"]}))
    with pytest.raises(LookupError):
        with warehouse.transaction() as statements:
            assert statements.execute("delete from ledger where entry = ?", ["a"]) == 1
            raise LookupError("stop half-way")
    assert sorted(warehouse.read("select entry from ledger")["entry"]) == ["a", "b", "c"]  # rolled back
    with warehouse.transaction() as statements:
        assert statements.fetch("select count(*) from ledger where entry <> ?", ["a"])[0][0] == 2
        assert statements.execute("delete from ledger where entry = ?", ["a"]) == 1
    assert sorted(warehouse.read("select entry from ledger")["entry"]) == ["b", "c"]


def test_the_raw_schema_is_ensured_on_either_engine(warehouse):
    warehouse.ensure_raw_schema()
    warehouse.ensure_raw_schema()  # idempotent
    assert warehouse.has("raw.orders") and warehouse.has("raw.loads")


@pytest.mark.fast
def test_targets_resolve_from_the_option_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CLV_DBT_TARGET", raising=False)
    assert resolve_target(None) == "duckdb"
    monkeypatch.setenv("CLV_DBT_TARGET", "postgres")
    assert resolve_target(None) == "postgres" and resolve_target("redshift") == "redshift"
    with pytest.raises(ValueError, match="unknown warehouse target 'snowflake'"):
        open_warehouse("snowflake")
    missing = open_warehouse("duckdb", tmp_path / "none.duckdb")
    assert not missing.exists() and not missing.has("clv_scores") and missing.describe().endswith("none.duckdb")
    assert open_warehouse("postgres").describe() == "postgres (CLV_PG_* settings)" and set(TARGETS) == {
        "duckdb", "postgres", "redshift"}


def test_replace_table_swaps_the_whole_table(warehouse):
    warehouse.replace_table("shadow_scores", pd.DataFrame({"customer_id": ["a", "b"], "champion_prediction": [1.0, 2.0]}))
    warehouse.replace_table("shadow_scores", pd.DataFrame({"customer_id": ["c"], "champion_prediction": [3.0]}))
    assert warehouse.read("select customer_id from shadow_scores")["customer_id"].tolist() == ["c"]


@pytest.mark.postgres
def test_campaign_segments_and_ab_analysis_on_postgres(postgres_database, tmp_path, capsys):
    """What `clv segments` and `clv ab-analyze` do on DuckDB (test_experiments.py), on PostgreSQL."""
    import numpy as np

    from clv.cli import main

    store = open_warehouse("postgres")
    rng = np.random.default_rng(2)
    scores = pd.DataFrame({"customer_id": [f"c{i}" for i in range(400)], "champion_prediction": rng.gamma(2, 50, 400)})
    scores["challenger_prediction"] = scores["champion_prediction"] * 1.1
    store.replace_table("shadow_scores", scores)
    store.replace_table("shadow_runs", pd.DataFrame({"champion_version": ["4"], "challenger_version": ["5"],
                                                     "run_at": [pd.Timestamp("2024-03-10")]}))
    assert main(["segments", "--kind", "ab", "--seed", "9", "--target", "postgres"]) == 0
    arms = store.read("select customer_id, arm, model_version from campaign_ab")
    assert len(arms) == 400 and set(arms["arm"]) == {"A", "B"}
    assert set(arms.loc[arms["arm"] == "B", "model_version"]) == {"5"}
    observed = pd.DataFrame({"customer_id": arms["customer_id"], "revenue": rng.gamma(2, 50, len(arms))})
    observed.to_csv(tmp_path / "observed.csv", index=False)
    assert main(["ab-analyze", "--observed", str(tmp_path / "observed.csv"), "--target", "postgres"]) == 0
    assert "Welch t =" in capsys.readouterr().out
