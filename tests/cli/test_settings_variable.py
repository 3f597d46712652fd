"""The team's settings in the Prefect UI: `clv settings push` stores the settings file as the Prefect
Variable `clv_settings`; the deployments read it over the file, key by key, so an edit in the UI takes
effect at the next run; without the Variable the file alone counts; a bad value edited in the UI is refused
naming the Variable."""

from __future__ import annotations

import pytest

from clv.cli import main
from clv.settings import SettingsError, load_settings

pytestmark = pytest.mark.slow  # a Prefect server


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "clv-settings.yml"
    path.write_text("orders: exports/orders.parquet\nhigh_tier_share: 0.25\nhorizon_days: 180\n")
    return path


def test_pushed_settings_are_read_over_the_file_and_an_edit_in_the_ui_takes_effect(prefect_server, settings_file,
                                                                                    capsys):
    from prefect.variables import Variable

    from flows.weekly import resolve_settings

    Variable.unset("clv_settings")
    assert load_settings(settings_file, "clv_settings").high_tier_share == 0.25  # no Variable: the file
    assert main(["settings", "push", "--settings", str(settings_file)]) == 0
    assert "3 settings of" in capsys.readouterr().out
    stored = Variable.get("clv_settings")
    assert stored["orders"] == str(settings_file.parent / "exports" / "orders.parquet")  # absolute, as the file meant
    Variable.set("clv_settings", {**stored, "high_tier_share": 0.1}, overwrite=True)  # what an edit in the UI does
    edited = resolve_settings(str(settings_file), demo=False, variable="clv_settings")
    assert (edited.high_tier_share, edited.horizon_days) == (0.1, 180)
    assert resolve_settings(str(settings_file), demo=False, variable="clv_settings", high_tier_share=0.3
                            ).high_tier_share == 0.3  # a parameter given to the run still wins
    assert load_settings(settings_file).high_tier_share == 0.25  # a run not pointed at the Variable: the file
    assert main(["settings", "show", "--settings", str(settings_file)]) == 0
    assert "high_tier_share: 0.1" in capsys.readouterr().out
    Variable.unset("clv_settings")


def test_a_bad_value_edited_in_the_ui_is_refused_naming_the_variable(prefect_server, settings_file):
    from prefect.variables import Variable

    Variable.set("clv_settings", {"high_tier_share": "lots"}, overwrite=True)
    with pytest.raises(SettingsError, match="with the Prefect Variable clv_settings .*high_tier_share must be a "
                                            "number in \\[0, 1\\], got 'lots'"):
        load_settings(settings_file, "clv_settings")
    Variable.set("clv_settings", {"hih_tier_share": 0.1}, overwrite=True)
    with pytest.raises(SettingsError, match="Prefect Variable clv_settings: unknown option\\(s\\) hih_tier_share"):
        load_settings(settings_file, "clv_settings")
    Variable.unset("clv_settings")
