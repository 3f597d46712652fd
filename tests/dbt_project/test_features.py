"""The dbt build on a hand-made shop whose features and labels are computed by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from clv import config
from clv.ingest.landing import land_file
from clv.transform import DbtBuildError, dbt_vars, run_dbt


def line(customer, order, day, product, quantity, price):
    return {"customer_id": customer, "order_id": order, "order_ts": pd.Timestamp(day) + pd.Timedelta(hours=12),
            "product_id": product, "quantity": quantity, "unit_price": price}


# Scoring cutoff 2025-06-30, horizon 365, one calendar cutoff 2024-06-30 (label window to 2025-06-30).
SHOP = pd.DataFrame([
    line("A", "o1", "2024-01-10", "p1", 2, 10.0),   # day 1: o1 = 25, o2 = 15 -> 40, two orders
    line("A", "o1", "2024-01-10", "p2", 1, 5.0),
    line("A", "o2", "2024-01-10", "p1", 1, 15.0),
    line("A", "o3", "2024-03-01", "p3", 3, 10.0),   # 30
    line("A", "r1", "2024-03-05", "p3", -1, 10.0),  # return of 10
    line("A", "o4", "2024-06-01", "p4", 1, 0.0),    # free item: no revenue, not a purchase day
    line("A", "o5", "2024-06-20", "p2", 1, 50.0),   # 50
    line("A", "o6", "2024-09-01", "p1", 2, 20.0),   # after the training cutoff: label 40
    line("A", "o7", "2025-07-15", "p1", 5, 20.0),   # after the label window: ignored
    line("B", "o8", "2024-05-01", "p9", 1, 100.0),  # single purchase
    line("B", "r2", "2024-08-01", "p9", -1, 100.0),  # return in the label window: label floored at 0
    line("C", "o9", "2025-06-30", "p1", 1, 7.0),    # acquired after the training cutoff, on the scoring day
    line(None, "o10", "2024-02-01", "p1", 1, 99.0),  # no customer id: dropped
])
VARS = dbt_vars(cutoff="2025-06-30", horizon_days=365, training_cutoffs=["2024-06-30"], order_value_cap_percentile=None)


def build(clv_home, tmp_path, frame, name="shop.parquet", variables=VARS):
    warehouse = clv_home / "warehouse.duckdb"
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    with duckdb.connect(str(warehouse)) as con:
        land_file(con, "orders", path)
    run_dbt(["build"], warehouse=warehouse, variables=variables)
    return warehouse


def read(warehouse, sql) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


@pytest.fixture
def warehouse(clv_home, tmp_path):
    """The hand-made shop for a test that changes it."""
    return build(clv_home, tmp_path, SHOP)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The hand-made shop built once for the tests that only read it."""
    root = tmp_path_factory.mktemp("shop")
    home = root / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLV_HOME", str(home))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield build(home, root, SHOP)


def features_at(warehouse, cutoff) -> pd.DataFrame:
    return read(warehouse, f"select * from customer_features where cutoff_date = '{cutoff}' order by customer_id") \
        .set_index("customer_id")


def test_training_cutoffs_come_from_the_calendar(shop):
    cutoffs = read(shop, "select cutoff_date, cutoff_role from int_cutoffs order by cutoff_date")
    assert [(str(d.date()), r) for d, r in cutoffs.itertuples(index=False)] == [
        ("2024-06-30", "training"), ("2025-06-30", "scoring")]


def test_observable_history_is_the_shops_first_order_to_the_cutoff_capped_at_a_year(shop):
    # the shop's first order (with a customer) is A's on 2024-01-10: 2024-01-10 .. 2024-06-30 is 173 days
    assert features_at(shop, "2024-06-30")["observable_history_days"].tolist() == [173, 173]
    assert features_at(shop, "2025-06-30")["observable_history_days"].eq(365).all()


def test_labels_at_each_horizon_whose_window_fits(clv_home, tmp_path):
    """Labels at 90 and 365 days; a 400-day window would end after the scoring cutoff and is not built."""
    warehouse = build(clv_home, tmp_path, SHOP, variables={**VARS, "label_horizons": [90, 365, 400]})
    labels = read(warehouse, "select customer_id, horizon_days, future_revenue, future_orders_count "
                             "from customer_labels order by 1, 2")
    # A: o6 (2024-09-01, 40) is within 90 days of 2024-06-30; B's return (2024-08-01) floors both at 0
    assert labels.values.tolist() == [["A", 90, 40.0, 1], ["A", 365, 40.0, 1], ["B", 90, 0.0, 0], ["B", 365, 0.0, 0]]


def test_features_match_hand_computation(shop):
    a = features_at(shop, "2024-06-30").loc["A"]
    expected = {
        "days_since_last_order": 10, "order_days_count": 3, "orders_count": 4, "avg_order_value": 30.0,
        "tenure_days": 172, "revenue_total": 110.0,
        "btyd_frequency": 2, "btyd_recency": 162, "btyd_t": 172, "btyd_monetary_value": 40.0,
        "orders_count_30d": 1, "revenue_sum_30d": 50.0, "distinct_products_30d": 1,
        "orders_count_90d": 1, "revenue_sum_90d": 50.0,
        "orders_count_365d": 4, "revenue_sum_365d": 110.0, "distinct_products_365d": 3,
        "mean_days_between_orders": 81.0, "std_days_between_orders": 1800 ** 0.5,
        "distinct_products_count": 3, "product_diversity_ratio": 0.6,
        "return_rate": 10 / 120, "revenue_share_90d": 50 / 120, "sessions_count_90d": 0,
    }
    for column, value in expected.items():
        assert a[column] == pytest.approx(value), column


def test_single_purchase_customer_has_zero_repeat_columns(shop):
    b = features_at(shop, "2024-06-30").loc["B"]
    assert (b["btyd_frequency"], b["btyd_recency"], b["btyd_t"], b["btyd_monetary_value"]) == (0, 0, 60, 0)
    assert pd.isna(b["mean_days_between_orders"])


def test_customers_appear_only_once_acquired(shop):
    assert list(features_at(shop, "2024-06-30").index) == ["A", "B"]
    assert list(features_at(shop, "2025-06-30").index) == ["A", "B", "C"]


def test_labels_count_exactly_the_horizon(shop):
    labels = read(shop, "select customer_id, future_revenue, future_orders_count from customer_labels order by 1")
    assert labels.values.tolist() == [["A", 40.0, 1], ["B", 0.0, 0]]


def test_features_ignore_orders_after_cutoff(clv_home, tmp_path, warehouse):
    before = features_at(warehouse, "2024-06-30")
    later = pd.DataFrame([line("A", "x1", "2024-07-01", "p7", 9, 99.0), line("B", "x2", "2024-12-24", "p1", 1, 5.0),
                          line("D", "x3", "2024-07-02", "p1", 1, 5.0)])
    build(clv_home, tmp_path, later, name="later.parquet")
    pd.testing.assert_frame_equal(features_at(warehouse, "2024-06-30"), before)


def test_failing_dbt_test_raises_with_the_node_name(clv_home, tmp_path, warehouse):
    with duckdb.connect(str(warehouse)) as con:  # corrupt raw data: one row key landed a second time
        con.execute("insert into raw.orders select * replace ((select max(loaded_at) from raw.orders) "
                    "+ interval 1 hour as loaded_at) from raw.orders limit 1")
    with pytest.raises(DbtBuildError, match="source_unique_since_last_build_shop_orders_row_key"):
        run_dbt(["build"], warehouse=warehouse, variables=VARS)


def test_cleaning_summary_counts_every_rule(shop):
    summary = read(shop, "select rule, rows_affected from cleaning_summary where cutoff_date is null")
    counts = dict(summary.itertuples(index=False))
    # the line without a customer id never reaches staging: landing quarantined it
    assert counts == {"dropped: order line without customer id": 0, "netted: return line (negative quantity)": 2,
                      "no revenue: line priced zero or less": 1}
    assert read(shop, "select reason from raw.quarantine")["reason"].tolist() == [
        "customer_id is missing (guest checkout or broken export)"]
    capped = read(shop, "select rows_affected, threshold from cleaning_summary where cutoff_date is not null")
    assert capped["rows_affected"].tolist() == [0, 0] and capped["threshold"].isna().all()  # cap off here


def test_extreme_orders_are_capped_not_dropped(clv_home, tmp_path):
    """Cap at the median of purchase orders up to each cutoff. At 2024-06-30 A's and B's purchase orders
    are 25, 15, 30, 50, 100 -> cap 30: A's days become 25+15=40, 30, min(50,30)=30; B's 100 -> 30."""
    variables = {**VARS, "order_value_cap_percentile": 0.5}
    warehouse = build(clv_home, tmp_path, SHOP, variables=variables)
    features = features_at(warehouse, "2024-06-30")
    assert features.loc["A", "revenue_total"] == pytest.approx(40 + 30 + 30 - 10)
    assert features.loc["A", "btyd_monetary_value"] == pytest.approx(30.0)
    assert features.loc["B", "revenue_total"] == pytest.approx(30.0)
    assert features.loc["A", "orders_count"] == 4  # capped, still counted
    capped = read(warehouse, "select rows_affected, threshold from cleaning_summary "
                             "where cutoff_date = '2024-06-30'")
    assert capped.values.tolist() == [[2, 30.0]]
    # labels use the cap known at the cutoff: A's o6 = 40 -> 30; B's return of 100 -> -30 -> 0
    labels = read(warehouse, "select customer_id, future_revenue from customer_labels order by 1")
    assert labels.values.tolist() == [["A", 30.0], ["B", 0.0]]


def test_a_burst_of_outlier_orders_does_not_move_the_cap_with_it(clv_home, tmp_path):
    """2,000 ordinary orders (10-109) in 2024; then 10 orders of 1,000,000 in 2025, 0.5% of all orders: the
    99.9th percentile at the scoring cutoff is one of them, so the cap gave way (the probe's 18 customers
    published at 0.6-2.1M). Now it stays at most 10 x the 99th percentile; at the 2024 cutoff, before the
    burst, it is the 99.9th percentile as before."""
    ordinary = [line(f"c{i % 200}", f"o{i}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=i % 170), "p1", 1,
                     10.0 + i % 100) for i in range(2000)]
    burst = [line(f"x{i}", f"big{i}", "2025-03-01", "p2", 200, 5000.0) for i in range(10)]
    variables = {**VARS, "order_value_cap_percentile": 0.999}
    warehouse = build(clv_home, tmp_path, pd.DataFrame(ordinary + burst), variables=variables)
    caps = read(warehouse, "select cutoff_date, order_value_cap from int_order_value_caps order by 1")
    values = pd.Series([10.0 + i % 100 for i in range(2000)])
    assert caps["order_value_cap"].iloc[0] == pytest.approx(values.quantile(0.999))  # 2024-06-30: no burst yet
    p99 = pd.Series(values.tolist() + [1e6] * 10).quantile(0.99)
    assert caps["order_value_cap"].iloc[1] == pytest.approx(10 * p99)  # was 1,000,000: no cap at all
    features = features_at(warehouse, "2025-06-30")
    assert features.loc["x0", "revenue_total"] == pytest.approx(10 * p99)


@pytest.mark.parametrize("corruption, failing_test", [
    ("update customer_features set orders_count = orders_count + 1 where customer_id = 'A'",
     "assert_features_read_only_history"),
    ("update customer_features set order_days_count = order_days_count - 1 where customer_id = 'A'",
     "assert_features_read_only_history"),
    ("update customer_features set distinct_products_count = distinct_products_count + 1 where customer_id = 'B'",
     "assert_features_read_only_history"),
    ("update customer_features set days_since_last_order = days_since_last_order - 1 where customer_id = 'A'",
     "assert_features_read_only_history"),
    ("delete from customer_features where customer_id = 'B'", "assert_features_read_only_history"),
    ("update customer_labels set future_orders_count = 2 where customer_id = 'A'",
     "assert_labels_cover_exactly_the_horizon"),
])
def test_singular_dbt_tests_catch_a_leak(warehouse, corruption, failing_test):
    with duckdb.connect(str(warehouse)) as con:
        con.execute(corruption)
    with pytest.raises(DbtBuildError, match=failing_test):
        run_dbt(["test", "--select", failing_test], warehouse=warehouse, variables=VARS)


def test_bench_features_writes_its_json(clv_home, tmp_path):
    from clv.bench import bench_features

    result = bench_features(2000, tmp_path / "bench.json", tmp_path / "work", training_snapshots=1)
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written == result
    assert written["customers"] == 2000 and written["cutoffs_built"] == 2
    assert written["order_lines"] > 2000 and written["events"] > written["order_lines"]
    assert written["feature_build_seconds"] > 0 and written["raw_scan_seconds"]["total"] > 0
    assert written["peak_rss_mb"] > 0


def test_dbt_docs_generate_writes_the_catalog(clv_home, shop):
    run_dbt(["docs", "generate"], warehouse=shop, variables=VARS)
    catalog = json.loads((clv_home / "dbt" / "target" / "catalog.json").read_text())
    assert "model.clv.customer_features" in catalog["nodes"]


def test_an_undocumented_column_fails_the_build_and_names_itself(clv_home, tmp_path, monkeypatch):
    """A column added to a model without its YAML entry stops the build: on a contracted table (what Python
    reads) dbt's contract names it before the table is replaced; elsewhere every_column_documented does. The
    documented project builds (every other test here)."""
    project = copied_project(tmp_path, monkeypatch)
    labels = project / "models" / "marts" / "customer_labels.sql"
    labels.write_text(labels.read_text().rstrip().removesuffix("select * from labels").rstrip()
                      + "\n\nselect *, 1 as surprise_column from labels\n")
    with pytest.raises(DbtBuildError, match="customer_labels") as failed:
        build(clv_home, tmp_path, SHOP)
    assert "surprise_column" in str(failed.value) and "missing in contract" in str(failed.value)

    labels.write_text((config.DBT_PROJECT_DIR / "models" / "marts" / "customer_labels.sql").read_text())
    summary = project / "models" / "marts" / "cleaning_summary.sql"
    summary.write_text(summary.read_text().replace("select * from line_rules\nunion all\nselect * from capped_orders",
                                                   "select *, 1 as surprise_column from line_rules\nunion all\n"
                                                   "select *, 1 as surprise_column from capped_orders"))
    with pytest.raises(DbtBuildError, match="every_column_documented_cleaning_summary") as failed:
        build(clv_home, tmp_path, SHOP, name="again.parquet")
    assert "fail" in str(failed.value)


def test_a_type_change_breaks_the_contract_and_names_the_column(clv_home, tmp_path, monkeypatch):
    """customer_labels keeps its declared types (an enforced dbt contract): a label computed as text stops
    the build before the table is replaced, naming the column; the declared project builds (every other test)."""
    project = copied_project(tmp_path, monkeypatch)
    labels = project / "models" / "marts" / "customer_labels.sql"
    labels.write_text(labels.read_text().rstrip().removesuffix("select * from labels").rstrip()
                      + "\n\nselect customer_id, cutoff_date, horizon_days, future_revenue,\n"
                        "    cast(future_orders_count as varchar) as future_orders_count\nfrom labels\n")
    with pytest.raises(DbtBuildError, match="customer_labels") as failed:
        build(clv_home, tmp_path, SHOP)
    assert "contract" in str(failed.value) and "future_orders_count" in str(failed.value)


def test_a_changed_column_type_asks_for_one_full_refresh(clv_home, tmp_path, monkeypatch):
    """Snapshots already built keep their types: after a declared type changes, the next incremental build
    stops and says what to run; the full refresh rebuilds them with the new type."""
    build(clv_home, tmp_path, SHOP)
    project = copied_project(tmp_path, monkeypatch)
    marts = project / "models" / "marts" / "_marts.yml"
    marts.write_text(marts.read_text().replace("      - name: revenue_total\n        data_type: float8\n",
                                               "      - name: revenue_total\n        data_type: text\n"))
    with pytest.raises(DbtBuildError, match="customer_features.*rebuild them once with `clv run --full-refresh`"):
        build(clv_home, tmp_path, SHOP, name="again.parquet")
    warehouse = clv_home / "warehouse.duckdb"
    run_dbt(["build", "--full-refresh"], warehouse=warehouse, variables=VARS)
    types = read(warehouse, "select data_type from information_schema.columns "
                            "where table_name = 'customer_features' and column_name = 'revenue_total'")
    assert types["data_type"].tolist() == ["VARCHAR"]


def test_order_versions_built_before_they_were_incremental_ask_for_one_full_refresh(clv_home, tmp_path):
    """A warehouse whose int_order_versions predates its last_loaded_at column (built before 2026-12-02)
    stops the next build with the full-refresh hint, and the full refresh rebuilds it with the column."""
    warehouse = build(clv_home, tmp_path, SHOP)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table int_order_versions drop column last_loaded_at")
    with pytest.raises(DbtBuildError, match="int_order_versions.*rebuild them once with `clv run --full-refresh`"):
        run_dbt(["build"], warehouse=warehouse, variables=VARS)
    run_dbt(["build", "--full-refresh"], warehouse=warehouse, variables=VARS)
    assert read(warehouse, "select count(last_loaded_at) as n from int_order_versions")["n"].iloc[0] > 0


def copied_project(tmp_path, monkeypatch) -> Path:
    """A copy of the dbt project the next builds use (to change a model without touching the real one)."""
    import shutil

    from clv import config, transform

    project = tmp_path / "dbt_project"
    shutil.copytree(config.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", project)
    return project


@pytest.mark.fast
def test_dbt_unit_tests_pin_the_feature_logic(shop):
    """The unit tests in models/intermediate/features/_features.yml pass on the hand-made rows."""
    import yaml

    from clv.config import DBT_PROJECT_DIR

    declared = yaml.safe_load((DBT_PROJECT_DIR / "models" / "intermediate" / "features" / "_features.yml").read_text())
    result = run_dbt(["test", "--select", "test_type:unit"], warehouse=shop, variables=VARS)
    ran = {r.node.name: r.status for r in result.result.results}
    assert ran == {test["name"]: "pass" for test in declared["unit_tests"]}


def test_a_unit_test_fails_when_a_window_boundary_moves(shop, clv_home, tmp_path, monkeypatch):
    """Counting the order N days before the cutoff in an N-day window breaks its unit test, by name."""
    project = copied_project(tmp_path, monkeypatch)
    windows = project / "models" / "intermediate" / "features" / "int_features__order_windows.sql"
    windows.write_text(windows.read_text().replace("days_before_cutoff < {{ w }}", "days_before_cutoff <= {{ w }}"))
    with pytest.raises(DbtBuildError, match="windows_cover_the_last_n_days_up_to_the_cutoff"):
        run_dbt(["test", "--select", "test_type:unit"], warehouse=shop, variables=VARS)


def test_a_feature_is_one_family_column_and_one_yaml_entry(clv_home, tmp_path, monkeypatch):
    """A column added to a family reaches customer_features once its YAML entry is there, at its place in
    the list; without the entry the build stops on the family's every_column_documented."""
    project = copied_project(tmp_path, monkeypatch)
    family = project / "models" / "intermediate" / "features" / "int_features__order_windows.sql"
    family.write_text(family.read_text().replace(
        "    windows.revenue_next_90d_last_year,\n",
        "    windows.revenue_next_90d_last_year,\n    windows.revenue_sum_30d * 2 as revenue_doubled_30d,\n"))
    with pytest.raises(DbtBuildError, match="every_column_documented_int_features__order_windows"):
        build(clv_home, tmp_path, SHOP)
    marts = project / "models" / "marts" / "_marts.yml"
    marts.write_text(marts.read_text().replace(
        "      - name: revenue_next_90d_last_year\n",
        "      - name: revenue_doubled_30d\n        data_type: float8\n        description: Twice the 30-day net revenue.\n"
        "      - name: revenue_next_90d_last_year\n", 1))
    warehouse = build(clv_home, tmp_path, SHOP, name="again.parquet")
    features = read(warehouse, "select * from customer_features order by cutoff_date, customer_id")
    columns = list(features.columns)
    assert columns.index("revenue_doubled_30d") == columns.index("revenue_next_90d_last_year") - 1
    assert (features["revenue_doubled_30d"] == 2 * features["revenue_sum_30d"]).all()
    training_set = read(warehouse, "select * from customer_training_set limit 1")  # its contract followed
    assert list(training_set.columns)[:len(columns)] == columns
    assert "revenue_doubled_30d" in (project / "models" / "marts" / "_training_set.yml").read_text()


def test_a_label_is_zero_when_purchases_and_returns_cancel_out(clv_home, tmp_path):
    """0.10 + 0.20 bought and 0.30 returned in the label window leave a floating-point remainder: the label
    is exactly 0, so the customer does not count as having bought again."""
    cancelled = pd.concat([SHOP, pd.DataFrame([
        line("D", "o20", "2024-02-01", "p1", 1, 30.0),
        line("D", "o21", "2024-09-01", "p1", 1, 0.1),
        line("D", "o21", "2024-09-01", "p2", 1, 0.2),
        line("D", "r21", "2024-09-02", "p1", -1, 0.3)])], ignore_index=True)
    warehouse = build(clv_home, tmp_path, cancelled)
    label = read(warehouse, "select future_revenue from customer_labels where customer_id = 'D'")
    assert label["future_revenue"].tolist() == [0.0]


def test_history_length_dependent_columns_come_from_the_compiled_manifest(clv_home, tmp_path, monkeypatch):
    """The offset model's excluded columns are what dbt compiled: the columns marked in the YAML (dbt is
    parsed first when no command wrote a manifest yet), and a column marked in a changed project once
    that project is parsed."""
    import yaml

    from clv import config
    from clv.dbt_manifest import history_length_dependent_columns, manifest_path

    declared = yaml.safe_load((config.DBT_PROJECT_DIR / "models" / "marts" / "_marts.yml").read_text())
    features = next(m for m in declared["models"] if m["name"] == "customer_features")
    marked = [c["name"] for c in features["columns"]
              if ((c.get("config") or {}).get("meta") or {}).get("history_length_dependent")]
    assert not manifest_path().exists()
    assert history_length_dependent_columns() == marked
    assert "revenue_total" in marked and "revenue_sum_365d" not in marked

    project = copied_project(tmp_path, monkeypatch)
    marts = project / "models" / "marts" / "_marts.yml"
    marts.write_text(marts.read_text().replace(
        "      - name: revenue_sum_90d\n",
        "      - name: revenue_sum_90d\n        config: {meta: {history_length_dependent: true}}\n", 1))
    assert history_length_dependent_columns() == marked  # the manifest of the last parse or build
    run_dbt(["parse"])
    assert set(history_length_dependent_columns()) == {*marked, "revenue_sum_90d"}
