"""The score tables' schema change for predictive distributions and value: a warehouse whose history was
written before the new columns existed gains them (older rows NULL), and `clv_forecast` is published with
its declared types, on DuckDB and on PostgreSQL (where every score table carries the column descriptions of
marts/_scores.yml as comments)."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest

from clv import pipeline
from clv.warehouse import score_contract
from clv.warehouse.engines import EmbeddedWarehouse, ServerWarehouse
from models_ml.base_forecast import forecast_table
from models_ml.scoring import build_score_table, discounted_margin_value
from models_ml.spread import LEVELS, Spread, distribution_columns
from tests.conftest import scratch_postgres_database

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

OLD_COLUMNS = {"customer_id": "text", "cutoff_date": "date", "predicted_clv_12m": "double precision", "clv_tier": "text",
               "p_alive": "double precision", "expected_orders_12m": "double precision", "top_reasons": "text",
               "reason_contributions": "text", "model_name": "text", "model_version": "text", "scored_at": "timestamp"}
NEW_COLUMNS = ("p_no_purchase", "predicted_clv_p10", "predicted_clv_p50", "predicted_clv_p90", "discounted_margin_value",
               "horizon_days")
SPREAD = Spread(180, [0.0, 0.5, 1.0], [1.0, 0.6, 0.2],
                [[0.0] * len(LEVELS), list(np.linspace(0.2, 3.0, len(LEVELS))), list(np.linspace(0.5, 2.0, len(LEVELS)))])


def new_week() -> tuple[pd.DataFrame, pd.DataFrame]:
    predicted = np.array([0.0, 40.0, 90.0, 400.0])
    scores = build_score_table(["a", "b", "c", "d"], "2024-03-10", predicted, "m", "2", pd.Timestamp("2024-03-11"),
                               distribution=distribution_columns(SPREAD, predicted),
                               value=discounted_margin_value(predicted, 365, 0.3, 0.1), horizon_days=365)
    frame = pd.DataFrame({"country": ["UK", "UK", "DE", "DE"], "clv_tier": scores["clv_tier"]})
    history = [{"origin": o, "scope": s, "scope_value": v, "predicted": 500.0, "actual": a, "variance": 900.0,
                "customers": 4} for o, a in (("2023-01-31", 450.0), ("2023-04-30", 560.0))
               for s, v in (("all", "all"), ("country", "UK"), ("country", "DE"))]
    return scores, forecast_table(frame, predicted, SPREAD, history, "2024-03-10")


def check_published(read, reported_types: dict) -> None:
    history = read("select * from clv_scores_history order by model_version, customer_id")
    assert set(NEW_COLUMNS) <= set(history.columns)
    old, new = history[history["model_version"] == "1"], history[history["model_version"] == "2"]
    assert old[list(NEW_COLUMNS)].isna().all().all()  # last week's rows: NULL, not invented
    assert new["p_no_purchase"].notna().all() and (new["predicted_clv_p90"] >= new["predicted_clv_p10"]).all()
    assert (new["horizon_days"] == 365).all()
    assert new["discounted_margin_value"].to_numpy(float) == pytest.approx(
        new["predicted_clv_12m"].to_numpy(float) * 0.3 * (0.1 / 1.1) / np.log(1.1))
    forecast = read("select * from clv_forecast order by scope, scope_value")
    assert list(forecast["scope"]) == ["all", "country", "country", "tier", "tier"]  # no high tier of 4 customers
    whole = forecast[forecast["scope"] == "all"].iloc[0]
    assert whole["predicted_revenue"] == pytest.approx(530.0) and whole["revenue_p10"] < 530.0 < whole["revenue_p90"]
    described = read("select column_name, data_type from information_schema.columns where table_name = 'clv_forecast' "
                     "order by ordinal_position")
    declared = score_contract.score_columns(score_contract.SCORES_YML, "clv_forecast")
    assert list(described.itertuples(index=False, name=None)) == [(name, reported_types.get(kind, kind))
                                                                  for name, kind in declared]


def test_a_history_from_before_the_distributions_gains_their_columns_on_duckdb(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table clv_scores_history (" + ", ".join(f"{c} {t}" for c, t in OLD_COLUMNS.items()) + ")")
        con.execute("insert into clv_scores_history (customer_id, cutoff_date, predicted_clv_12m, model_name, "
                    "model_version) values ('a', '2024-03-03', 5.0, 'm', '1')")
    scores, forecast = new_week()
    pipeline.publish(SimpleNamespace(warehouse_interface=lambda: EmbeddedWarehouse(path)), scores, forecast_rows=forecast)
    with duckdb.connect(str(path), read_only=True) as con:
        check_published(lambda sql: con.execute(sql).df(),
                        {"text": "VARCHAR", "date": "DATE", "float8": "DOUBLE", "bigint": "BIGINT"})


def test_a_history_from_before_the_distributions_gains_their_columns_on_postgres(monkeypatch):
    from clv.warehouse import server

    with scratch_postgres_database() as (_, database):
        monkeypatch.setenv("CLV_PG_DATABASE", database)
        conn = server.connect("postgres")
        with conn, conn.cursor() as cur:
            cur.execute("create table clv_scores_history (" + ", ".join(f"{c} {t}" for c, t in OLD_COLUMNS.items()) + ")")
            cur.execute("insert into clv_scores_history (customer_id, cutoff_date, predicted_clv_12m, model_name, "
                        "model_version) values ('a', '2024-03-03', 5.0, 'm', '1')")
        conn.close()
        scores, forecast = new_week()
        pipeline.publish(SimpleNamespace(warehouse_interface=lambda: ServerWarehouse("postgres")), scores,
                         forecast_rows=forecast)
        check_published(lambda sql: server.read_query("postgres", sql),
                        {"float8": "double precision", "bigint": "bigint", "date": "date"})
        # the descriptions of marts/_scores.yml, where a BI tool's column browser shows them
        comments = server.read_query("postgres", """
            select c.relname as table_name, a.attname as column_name, col_description(c.oid, a.attnum) as note,
                   obj_description(c.oid, 'pg_class') as table_note
            from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0
            where c.relname in ('clv_scores', 'clv_scores_history', 'clv_forecast', 'clv_tier_summary')""")
        described = comments.dropna(subset=["note"]).groupby("table_name")["column_name"].apply(set)
        assert {"predicted_clv_12m", "predicted_clv_p10", "horizon_days", "top_reasons"} <= described["clv_scores"]
        assert "predicted_clv_p90" in described["clv_scores_history"]
        assert {"predicted_revenue", "revenue_p10"} <= described["clv_forecast"]
        assert comments.groupby("table_name")["table_note"].first().notna().all()
        note = comments.query("table_name == 'clv_scores' and column_name == 'horizon_days'")["note"].item()
        assert "horizon" in note.lower()
