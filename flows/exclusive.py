"""Flows that write the warehouse run one at a time: deployed runs queue on one Prefect global
concurrency limit shared by every such deployment, and every run (deployed or `clv ...`) holds the
warehouse's run lock (`clv.warehouse.run_lock`), which fails at once when another process has it."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from prefect import runtime
from prefect.concurrency.sync import concurrency

from clv.warehouse.run_lock import warehouse_run_lock

WAREHOUSE_LIMIT = "clv-warehouse-writes"
WAIT_HOURS = 12  # a queued deployed run gives up after this long


def ensure_warehouse_limit(limit: int = 1) -> None:
    """Create the shared global concurrency limit (one slot) on the Prefect server if it is absent."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=WAREHOUSE_LIMIT, limit=limit))


@contextmanager
def exclusive_warehouse(target: str, warehouse: str | None, flow_name: str):
    """Queue for the shared slot when running as a deployment, then hold the warehouse's run lock."""
    deployed = bool(runtime.deployment.id)
    if deployed:
        ensure_warehouse_limit()
    slot = concurrency(WAREHOUSE_LIMIT, occupy=1, timeout_seconds=WAIT_HOURS * 3600, strict=True) \
        if deployed else nullcontext()
    with slot, warehouse_run_lock(target, warehouse, flow_name):
        yield
