"""One place for a run's defaults (clv.settings.DEFAULTS): the flows' parameters, dbt's own vars and the
CLI's help all say the same."""

from __future__ import annotations

import inspect

import pytest
import yaml

from clv.cli import build_parser
from clv.config import DBT_PROJECT_DIR
from clv.settings import DEFAULTS, RunSettings, load_settings
from flows.features import feature_build_flow
from flows.weekly import build_features

pytestmark = pytest.mark.fast  # the daily loop: make test-fast


def test_dbt_project_vars_default_to_the_run_defaults():
    variables = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert variables["horizon_days"] == DEFAULTS.horizon_days
    assert variables["order_value_cap_percentile"] == DEFAULTS.order_value_cap_percentile


def test_flow_and_task_parameters_default_to_the_run_defaults():
    for function in (feature_build_flow.fn, build_features.fn):
        parameters = inspect.signature(function).parameters
        for name in ("horizon_days", "order_value_cap_percentile", "min_history_days", "backtest_origins"):
            if name in parameters and parameters[name].default is not inspect.Parameter.empty:
                assert parameters[name].default == getattr(DEFAULTS, name), (function.__name__, name)


def test_cli_help_states_the_run_defaults():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    helps = {action.dest: action.help for action in run._actions}
    assert f"default {DEFAULTS.horizon_days}" in helps["horizon_days"]
    assert f"default {DEFAULTS.high_tier_share}" in helps["high_tier_share"]


def test_a_settings_file_overrides_the_defaults_and_explicit_options_override_the_file(tmp_path):
    path = tmp_path / "clv-settings.yml"
    path.write_text("horizon_days: 180\nhigh_tier_share: 0.1\n")
    settings = load_settings(path, high_tier_share=0.25)
    assert (settings.horizon_days, settings.high_tier_share) == (180, 0.25)
    assert load_settings(None) == RunSettings() == DEFAULTS


def test_the_demo_is_the_bundled_orders_alone_and_make_run_asks_for_it(tmp_path):
    from clv.config import BUNDLED_ORDERS, REPO_ROOT
    from clv.settings import SettingsError
    from flows.weekly import resolve_settings

    assert resolve_settings(None, True).orders == str(BUNDLED_ORDERS)
    assert resolve_settings(None, False, orders="shop.csv").orders == "shop.csv"
    with pytest.raises(SettingsError, match="no inputs"):
        resolve_settings(None, False)
    with pytest.raises(SettingsError, match="--demo runs on the bundled Online Retail II orders only"):
        resolve_settings(None, True, orders="shop.csv")
    recipe = (REPO_ROOT / "Makefile").read_text().split("\nrun: setup\n")[1].splitlines()[0]
    assert "--demo" in recipe and "$(filter --orders% --sources% --settings%,$(ARGS))" in recipe
