"""The Prefect flows the CLI runs, loaded by their entrypoints in the project (`flows/<file>.py:<function>`,
the strings prefect.yaml deploys), as a Prefect worker loads them: the core library never imports the
orchestration layer, and `flows/` is not a published package."""

from __future__ import annotations

import importlib
import sys

from clv.config import REPO_ROOT

FLOWS = {
    "weekly-clv": "flows/weekly.py:weekly_clv_pipeline",
    "build-features": "flows/features.py:feature_build_flow",
    "monitor-drift": "flows/monitor.py:monitor_flow",
    "retrain-clv": "flows/retrain.py:retrain_flow",
    "shadow-run": "flows/shadow.py:shadow_flow",
}


def load_flow(name: str):
    """The flow called `name` (a key of FLOWS), imported from the project directory."""
    path, function = FLOWS[name].split(":")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)
