"""The architecture holds: the core library and the ML code never import the orchestration layer, the ML
code never imports Prefect, the CLI loads flows by the entrypoints prefect.yaml deploys, and only the
warehouse package asks which engine it talks to."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from clv.config import REPO_ROOT
from clv.flow_entrypoints import FLOWS, load_flow

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

ENGINES = {"duckdb", "postgres", "redshift"}


def python_files(*packages: str) -> list[Path]:
    return [path for package in packages for path in sorted((REPO_ROOT / package).rglob("*.py"))]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_library_and_the_ml_code_never_import_flows_or_deployments():
    offenders = {str(path.relative_to(REPO_ROOT)): sorted(m for m in imported_modules(path)
                                                          if m.split(".")[0] in ("flows", "deployments"))
                 for path in python_files("clv", "models_ml")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_ml_code_never_imports_prefect():
    offenders = [str(path.relative_to(REPO_ROOT)) for path in python_files("models_ml")
                 if any(m.split(".")[0] == "prefect" for m in imported_modules(path))]
    assert offenders == []


def test_the_cli_runs_the_flows_prefect_yaml_deploys():
    deployed = {d["entrypoint"] for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}
    assert deployed <= set(FLOWS.values())
    for name in FLOWS:
        assert load_flow(name).name == name  # each entrypoint is the Prefect flow of that name


def target_comparisons(path: Path) -> list[int]:
    """Lines of `path` that compare something with an engine name."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            constants = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
            if ENGINES & constants:
                lines.append(node.lineno)
    return lines


def test_only_the_warehouse_package_compares_target_names():
    """`target == "postgres"` and the like appear only under clv/warehouse/ (every other caller uses the
    Warehouse interface)."""
    assert target_comparisons(REPO_ROOT / "clv" / "warehouse" / "engines.py")  # the check sees them where they are
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line}" for path in python_files("clv", "models_ml", "flows")
                 if path.relative_to(REPO_ROOT).parts[:2] != ("clv", "warehouse") for line in target_comparisons(path)]
    assert offenders == []
