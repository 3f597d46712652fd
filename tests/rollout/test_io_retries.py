"""The weekly flow's I/O steps retry a dropped connection and never a bad input, through a real Prefect
server (out of the daily loop: starting the server costs it 15 s)."""

from __future__ import annotations

import pytest

from clv import pipeline


def test_io_steps_retry_a_dropped_connection_but_not_a_bad_input(prefect_server, tmp_path, monkeypatch):
    """Landing (like publishing) retries transient errors; an input error fails at its first attempt."""
    from prefect import flow

    from clv.ingest.contract import ContractError
    from clv.ingest.landing import DuckDBRawSink
    from flows import weekly
    from tests.ingest.test_bad_inputs import good_orders

    orders = tmp_path / "orders.parquet"
    good_orders(seed=40).to_parquet(orders, index=False)
    attempts, failure = [], {"error": None}
    insert = DuckDBRawSink.insert_new_rows

    def flaky(self, load, load_id):
        attempts.append(load_id)
        if len(attempts) == 1:
            raise failure["error"]
        return insert(self, load, load_id)

    monkeypatch.setattr(DuckDBRawSink, "insert_new_rows", flaky)

    @flow
    def land(warehouse: str) -> list:
        return weekly.land_inputs.with_options(retry_delay_seconds=0)(
            pipeline.Run.of(warehouse=warehouse, orders=str(orders)))

    failure["error"] = ConnectionError("server closed the connection unexpectedly")
    [loaded] = land(str(tmp_path / "a.duckdb"))
    assert len(attempts) == 2 and loaded["rows_inserted"] == 400
    attempts.clear()
    failure["error"] = ContractError("orders file x: missing required column(s) unit_price")
    with pytest.raises(ContractError):
        land(str(tmp_path / "b.duckdb"))
    assert len(attempts) == 1  # not retried
    assert weekly.score_customers.retries == 2 and weekly.score_customers.retry_condition_fn is not None
