"""DuckDB's memory limit: CLV_DUCKDB_MEMORY_LIMIT when set; else a third of the memory at hand (the
container's limit when lower than the machine's), which both clv's connections and the dbt profile use."""

from __future__ import annotations

from clv.warehouse import embedded


def test_a_third_of_the_memory_at_hand_by_default(monkeypatch):
    monkeypatch.delenv(embedded.MEMORY_LIMIT_ENV, raising=False)
    assert embedded.default_memory_limit(24 * 2**30) == "8GB"
    assert embedded.default_memory_limit(16 * 2**30) == "5GB"
    assert embedded.default_memory_limit(2 * 2**30) == "1GB"  # never below 1GB
    assert embedded.default_memory_limit(0) == embedded.FALLBACK_DUCKDB_MEMORY_LIMIT  # memory unknown


def test_a_container_limit_lower_than_the_machine_wins(tmp_path):
    limit = tmp_path / "memory.max"
    limit.write_text(f"{3 * 2**30}\n")
    assert embedded.machine_memory_bytes([str(limit)]) == 3 * 2**30
    limit.write_text("max\n")  # cgroup v2 without a limit: the machine's memory
    assert embedded.machine_memory_bytes([str(limit)]) == embedded.machine_memory_bytes([])


def test_the_setting_wins_and_reaches_the_connection(monkeypatch, tmp_path):
    monkeypatch.setenv(embedded.MEMORY_LIMIT_ENV, "3GB")
    with embedded.connect(tmp_path / "w.duckdb") as con:
        assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] == "2.7 GiB"  # 3 GB
    monkeypatch.delenv(embedded.MEMORY_LIMIT_ENV)
    monkeypatch.setattr(embedded, "machine_memory_bytes", lambda: 12 * 2**30)
    assert embedded.memory_limit() == "4GB"
    with embedded.connect(tmp_path / "w.duckdb") as con:
        assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] == "3.7 GiB"  # 4 GB
