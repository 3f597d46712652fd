"""The ECS work pool that docs/scale-and-cloud.md tells a team to create: the job variables it names are
ones prefect-aws's ECS worker accepts (offline: the worker's own base job template, no AWS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prefect_aws.workers.ecs_worker import ECSWorker

pytestmark = pytest.mark.fast  # the daily loop: make test-fast

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-and-cloud.md"


def documented_ecs_pool() -> dict:
    """The `definitions.work_pools.local` block of the documented prefect.yaml excerpt."""
    section = DOC.read_text().split("## Work pools", 1)[1]
    excerpt = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(excerpt)["definitions"]["work_pools"]["local"]


def test_the_documented_ecs_job_variables_are_ones_the_ecs_worker_accepts():
    accepted = set(ECSWorker.get_default_base_job_template()["variables"]["properties"])
    pool = documented_ecs_pool()
    assert pool["name"] == "clv-ecs"
    assert set(pool["job_variables"]) <= accepted, set(pool["job_variables"]) - accepted
    assert {"image", "env"} <= set(pool["job_variables"])  # the image with the repository, and its settings


def test_a_misspelt_job_variable_is_not_accepted():
    accepted = set(ECSWorker.get_default_base_job_template()["variables"]["properties"])
    assert "task_role" not in accepted and "task_role_arn" in accepted  # the check can fail
