"""A rollout pays its ARM requests into the subscription's shared budget: a Prefect rate limit that mirrors ARM's
bucket, created on first use, which runs on every worker spend together."""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client

from flows.global_rollout import global_rollout
from flows.params import RolloutParams
from georep.emulator.client import EmulatorControl
from tasks.budget import BUCKETS, limit_name
from tests.conftest import RegistryRef


def test_rollout_spends_the_subscription_budget_shared_through_prefect(
    registry: RegistryRef, control: EmulatorControl
) -> None:
    plan = (
        f"registry: {{subscription_id: {registry.subscription}, resource_group: {registry.resource_group}, "
        f"name: {registry.name}}}\nregions: [westeurope, eastus]\n"
    )
    state = global_rollout(RolloutParams(plan_yaml=plan), return_state=True)
    assert state.is_completed(), state.message
    sent = control.requests(registry=registry.name)
    assert sum(1 for r in sent if r["method"] == "PUT") == 2
    time.sleep(0.5)  # payment is settled in the background
    with get_client(sync_client=True) as client:
        for kind in ("reads", "writes"):
            limit = client.read_global_concurrency_limit_by_name(limit_name(kind, registry.subscription))  # type: ignore[arg-type]
            burst, refill = BUCKETS[kind]  # type: ignore[index]
            assert (limit.limit, limit.slot_decay_per_second) == (burst, refill)
