"""One settings file for a team's deployments (`clv-settings.yml`; see clv-settings.example.yml): where
the inputs come from, which warehouse, and the run options. Deployments also read the Prefect Variable
`clv_settings` when it exists (`clv settings push` copies the file there; the Prefect UI shows and edits
it). Flow parameters given explicitly win over the Variable, the Variable over the file, the file over the
defaults. Deployed runs never fall back to the bundled demo data."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml


class SettingsError(ValueError):
    """The settings file is missing, unreadable, or names an unknown option."""


@dataclass
class RunSettings:
    """A run's options, and the one place their defaults live (`DEFAULTS`): the CLI, the flows, dbt's
    vars and the benchmarks take theirs from here."""

    sources: str | None = None
    orders: str | None = None
    customers: str | None = None
    events: str | None = None
    warehouse: str | None = None
    target: str | None = None
    cutoff: str | None = None
    horizon_days: int = 365
    model_name: str = "clv_xgboost"
    order_value_cap_percentile: float | None = 0.999
    high_tier_share: float = 0.2
    medium_tier_share: float = 0.3
    gate_config: dict | None = None
    min_history_days: int = 90
    snapshot_grid_months: int = 1
    backtest_origins: int = 3
    bootstrap_resamples: int = 200
    model_spec: dict | None = None
    max_prediction_multiple: float = 10.0  # scores above this x the largest yearly spend are not published
    margin_rate: float | None = None  # share of revenue kept as margin: clv_scores gains discounted_margin_value
    annual_discount_rate: float | None = None  # discounts discounted_margin_value (needs margin_rate)
    extra: dict = field(default_factory=dict)

    @property
    def has_inputs(self) -> bool:
        return bool(self.sources or self.orders)


DEFAULTS = RunSettings()


def check_demo_choice(has_inputs: bool, demo: bool) -> None:
    """A run names its inputs or asks for the demo, never neither and never both: a shop's run that lost its
    inputs must stop, not land the bundled Online Retail II orders into the shop's warehouse."""
    if not has_inputs and not demo:
        raise SettingsError("no inputs: give --orders, --sources or --settings (a flow: the parameters `orders`, "
                            "`sources` or `settings_file`); the bundled demo data only with --demo (`make run`)")
    if has_inputs and demo:
        raise SettingsError("--demo runs on the bundled Online Retail II orders only: drop --demo, or the "
                            "inputs (--orders, --sources, --settings)")


def load_settings(path: str | Path | None, variable: str | None = None, **overrides) -> RunSettings:
    """Settings from the file (paths in it are relative to the file's folder), then the Prefect Variable
    `variable` when it exists (what the team edits in the Prefect UI, key by key over the file), then the
    overrides that are not None."""
    values = _settings_file_values(path)
    edited = variable_settings(variable) if variable else {}
    values.update(edited)
    values.update({k: v for k, v in overrides.items() if v is not None})
    where = f"settings file {path}" if path else "the run's options"
    if edited:
        where += f" with the Prefect Variable {variable} ({', '.join(sorted(edited))})"
    check_types(values, where)
    settings = RunSettings(**values)
    check_value_settings(settings, where)
    return settings


def variable_settings(name: str) -> dict:
    """The settings the Prefect Variable `name` holds (a mapping of RunSettings options), {} when there is
    no such Variable. `clv settings push` writes it from the settings file."""
    from prefect.variables import Variable

    value = Variable.get(name, default=None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"Prefect Variable {name} must hold a mapping of settings (clv settings push writes one), "
                            f"got {type(value).__name__}")
    _check_known(value, f"Prefect Variable {name}")
    return value


def _check_known(values: dict, where: str) -> None:
    known = {f.name for f in fields(RunSettings)} - {"extra"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _settings_file_values(path: str | Path | None) -> dict:
    values: dict = {}
    if path:
        path = Path(path)
        if not path.exists():
            raise SettingsError(f"settings file {path} not found (copy clv-settings.example.yml and edit it)")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise SettingsError(f"settings file {path} must be a mapping of options (see clv-settings.example.yml)")
        _check_known(values, f"settings file {path}")
        for key in ("sources", "orders", "customers", "events", "warehouse"):
            if values.get(key) and "://" not in str(values[key]) and not Path(values[key]).is_absolute():
                values[key] = str((path.parent / values[key]).resolve())
    return values


def push_to_variable(path: str | Path, name: str) -> dict:
    """Store the settings file's options (checked, paths made absolute) as the Prefect Variable `name`, where
    the Prefect UI shows and edits them; returns what was stored."""
    from prefect.variables import Variable

    values = _settings_file_values(path)
    check_types(values, f"settings file {path}")
    check_value_settings(RunSettings(**values), f"settings file {path}")
    Variable.set(name, values, overwrite=True, tags=["clv", "settings"])
    return values


# the allowed range of each number, beside the type its annotation gives (checked before anything runs)
RANGES = {
    "horizon_days": (1, 3650), "order_value_cap_percentile": (0.5, 1.0), "high_tier_share": (0.0, 1.0),
    "medium_tier_share": (0.0, 1.0), "min_history_days": (0, 3650), "snapshot_grid_months": (1, 12),
    "backtest_origins": (1, 24), "bootstrap_resamples": (0, 100_000), "max_prediction_multiple": (1.0, 1e6),
}
_KINDS = {"int": (int,), "float": (int, float), "str": (str,), "dict": (dict,)}


def check_types(values: dict, where: str) -> None:
    """Every option of the right type and in range, named with what was expected (a mistyped setting is
    refused in a second, not after minutes of work ending in a traceback)."""
    annotations = {f.name: str(f.type) for f in fields(RunSettings)}
    for key, value in values.items():
        if key not in annotations or key in ("extra", "margin_rate", "annual_discount_rate"):
            continue  # the value settings have half-open ranges: check_value_settings
        kinds = [k.strip() for k in annotations[key].split("|")]
        if value is None and "None" in kinds:
            continue
        allowed = tuple(t for k in kinds for t in _KINDS.get(k, ()))
        low, high = RANGES.get(key, (None, None))
        expected = ("a whole number" if kinds[0] == "int" else "a number" if kinds[0] == "float" else
                    "text" if kinds[0] == "str" else "a mapping")
        if low is not None:
            expected += f" in [{low:g}, {high:g}]"
        if (isinstance(value, bool) or not isinstance(value, allowed)
                or (low is not None and not low <= value <= high)):
            raise SettingsError(f"{where}: {key} must be {expected}, got {value!r}")
        if key == "medium_tier_share" and value + values.get("high_tier_share", DEFAULTS.high_tier_share) > 1:
            raise SettingsError(f"{where}: high_tier_share + medium_tier_share must be at most 1, got "
                                f"{values.get('high_tier_share', DEFAULTS.high_tier_share)} + {value}")


def check_value_settings(settings: RunSettings, where) -> None:
    """margin_rate in (0, 1] and annual_discount_rate in [0, 1), the discount only with a margin."""
    margin, rate = settings.margin_rate, settings.annual_discount_rate
    for key, value, ok, expected in (("margin_rate", margin, lambda v: 0 < v <= 1, "a number in (0, 1]"),
                                     ("annual_discount_rate", rate, lambda v: 0 <= v < 1, "a number in [0, 1)")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not ok(value)):
            raise SettingsError(f"{where}: {key} must be {expected}, got {value!r}")
    if rate is not None and margin is None:
        raise SettingsError(f"{where}: annual_discount_rate needs margin_rate (the value discounted is margin; "
                            "margin_rate: 1.0 discounts revenue itself)")
