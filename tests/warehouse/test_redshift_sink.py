"""Redshift landing offline: rows go to S3 (moto, an in-process stand-in for AWS) as gzipped CSV and are
loaded with COPY. No Redshift cluster exists offline, so the connection is a recorder of the SQL sent;
the same statements' PostgreSQL counterparts run on a real server in test_engines.py, and the Redshift
dbt profile is parsed there too."""

from __future__ import annotations

import gzip
import io

import duckdb
import pandas as pd
import pytest

from clv.ingest.landing import land_file
from clv.warehouse import score_contract
from clv.warehouse.embedded import tier_summary_sql
from clv.warehouse.redshift import RedshiftRawSink, RedshiftSettings
from clv.warehouse.serving import comment_statements
from tests.conftest import moto_s3
from tests.warehouse.redshift_dialect import redshift_problems

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

SETTINGS = RedshiftSettings("clv.example.eu-west-1.redshift.amazonaws.com", 5439, "clv", "", "analytics",
                            "arn:aws:iam::123456789012:role/clv-redshift-copy", "s3://clv-warehouse-bucket/prod")


class RecordingConnection:
    """Stands in for a Redshift connection: records each statement, answers queries with no rows."""

    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.log.append(("commit" if exc[0] is None else "rollback", None))

    def cursor(self):
        return RecordingCursor(self.log)

    def close(self):
        pass


class RecordingCursor:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def execute(self, sql, params=None):
        self.log.append((" ".join(sql.split()), params))
        self.rowcount = 3

    def fetchall(self):
        return []

    def fetchone(self):
        return (0,)  # count(*) of no rows


@pytest.fixture
def s3(monkeypatch):
    with moto_s3(monkeypatch, "clv-warehouse-bucket") as client:
        yield client


def test_redshift_sink_lands_through_s3_and_copy(s3, tmp_path):
    orders = pd.DataFrame({"customer_id": ["c1", "c2", "c3", None], "order_id": ["o1", "o2", "o3", "o4"],
                           "order_ts": pd.to_datetime(["2024-03-01 10:00:00"] * 4), "quantity": [1.0, 2.0, 1.0, 1.0],
                           "unit_price": [9.5, 3.0, 1.25, 4.0]})
    path = tmp_path / "orders.parquet"
    orders.to_parquet(path, index=False)
    statements = []
    con = duckdb.connect()
    sink = RedshiftRawSink(con, SETTINGS, connect=lambda: RecordingConnection(statements), s3=s3)
    [result] = land_file(con, "orders", path, sink)

    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="clv-warehouse-bucket")["Contents"])
    assert keys == [f"prod/landing/orders/{result.load_id}/quarantine.csv.gz",
                    f"prod/landing/orders/{result.load_id}/rows.csv.gz"]
    body = s3.get_object(Bucket="clv-warehouse-bucket", Key=keys[1])["Body"].read()
    rows = pd.read_csv(io.BytesIO(gzip.decompress(body)), header=None)
    assert sorted(rows[1]) == ["c1", "c2", "c3"] and rows[0].str.fullmatch("[0-9a-f]{32}").all()
    assert rows[3].tolist() == ["2024-03-01 10:00:00"] * 3  # the format the COPY's timeformat reads
    quarantined = pd.read_csv(io.BytesIO(gzip.decompress(s3.get_object(
        Bucket="clv-warehouse-bucket", Key=keys[0])["Body"].read())), header=None)
    assert quarantined[2].tolist() == ["customer_id is missing (guest checkout or broken export)"]

    sql = [s for s, _ in statements]
    copy = [s for s in sql if s.startswith("copy ")]
    assert copy == [
        "copy incoming (row_key, customer_id, order_id, order_ts, product_id, quantity, unit_price, line_id, updated_at, "
        "deleted_at) from "
        f"'s3://clv-warehouse-bucket/prod/landing/orders/{result.load_id}/rows.csv.gz' iam_role "
        "'arn:aws:iam::123456789012:role/clv-redshift-copy' format as csv gzip timeformat 'YYYY-MM-DD HH:MI:SS' "
        "emptyasnull",
        "copy incoming_quarantine (row_key, entity, reason, record) from "
        f"'s3://clv-warehouse-bucket/prod/landing/orders/{result.load_id}/quarantine.csv.gz' iam_role "
        "'arn:aws:iam::123456789012:role/clv-redshift-copy' format as csv gzip timeformat 'YYYY-MM-DD HH:MI:SS' "
        "emptyasnull"]
    # one transaction: temp table, COPY, insert of new keys only, load record; then commit
    assert {s: redshift_problems(s) for s in sql if redshift_problems(s)} == {}  # every statement is Redshift SQL
    load_statements = sql[sql.index("create temp table incoming (like raw.orders)"):]
    assert load_statements[2].startswith("insert into raw.orders") and "where not exists" in load_statements[2]
    assert any(s.startswith("insert into raw.loads") for s in load_statements)
    assert statements[-1] == ("commit", None)
    assert not [s for s in sql if "on conflict" in s or "create unique index" in s or "if not exists" in s
                and s.startswith("alter table")]  # PostgreSQL-only syntax Redshift rejects


def test_redshift_settings_name_what_is_missing(monkeypatch):
    for name in ("CLV_REDSHIFT_HOST", "CLV_REDSHIFT_IAM_ROLE", "CLV_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="CLV_REDSHIFT_HOST, CLV_REDSHIFT_IAM_ROLE, CLV_STORAGE_URL"):
        RedshiftSettings.from_env()


def test_scores_are_published_to_redshift_in_one_transaction(s3, monkeypatch):
    from clv.warehouse import server as server_warehouse

    monkeypatch.setenv("CLV_REDSHIFT_HOST", SETTINGS.host)
    monkeypatch.setenv("CLV_REDSHIFT_IAM_ROLE", SETTINGS.iam_role)
    monkeypatch.setenv("CLV_STORAGE_URL", SETTINGS.storage_url)
    scores = pd.DataFrame({"customer_id": ["c1", "c2"], "cutoff_date": [pd.Timestamp("2024-03-01").date()] * 2,
                           "predicted_clv_12m": [10.5, 0.0], "scored_at": pd.to_datetime(["2024-03-02 06:00"] * 2)})
    statements = []
    server_warehouse.publish_scores("redshift", scores, connection=RecordingConnection(statements), s3=s3)
    sql = [s for s, _ in statements]
    assert {s: redshift_problems(s) for s in sql if redshift_problems(s)} == {}  # every statement is Redshift SQL
    [key] = [item["Key"] for item in s3.list_objects_v2(Bucket="clv-warehouse-bucket")["Contents"]]
    assert key.startswith("prod/publish/clv_scores/") and key.endswith(".csv.gz")
    body = gzip.decompress(s3.get_object(Bucket="clv-warehouse-bucket", Key=key)["Body"].read()).decode()
    # every declared column of the score contract, in order: the ones this run did not compute are empty (NULL)
    given = {"customer_id": ["c1", "c2"], "cutoff_date": ["2024-03-01"] * 2, "predicted_clv_12m": ["10.5", "0.0"],
             "scored_at": ["2024-03-02 06:00:00.000000"] * 2}
    names = [name for name, _ in score_contract.column_types("redshift")]
    assert body.splitlines() == [",".join(given[name][row] if name in given else "" for name in names) for row in (0, 1)]
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in score_contract.column_types("redshift"))
    names = ", ".join(f'"{name}"' for name, _ in score_contract.column_types("redshift"))
    assert '"customer_id" varchar(65535), "cutoff_date" date, "predicted_clv_12m" double precision, ' in columns
    published = [name for name, _ in score_contract.column_types("redshift")]
    assert sql[2:] == [
        "drop table if exists clv_scores__next",
        f"create table clv_scores__next ({columns})",
        f"copy clv_scores__next from 's3://clv-warehouse-bucket/{key}' iam_role '{SETTINGS.iam_role}' "
        "format as csv gzip timeformat 'auto' emptyasnull",
        "drop table if exists clv_scores",
        "alter table clv_scores__next rename to clv_scores",
        "drop table if exists clv_tier_summary",
        f"create table clv_tier_summary as {tier_summary_sql('clv_scores')}",
        f"create table clv_scores_history ({columns})",
        f"insert into clv_scores_history ({names}) select {names} from clv_scores",
        *comment_statements("clv_scores", published), *comment_statements("clv_scores_history", published),
        *comment_statements("clv_tier_summary", ["clv_tier", "cutoff_date", "customers", "predicted_value",
                                                 "share_of_value"]),
        "commit"]
    # the column descriptions travel with the tables, in the same transaction
    assert 'comment on column clv_scores."horizon_days" is ' in " ".join(sql)
