"""A rollout pays its ARM requests into the subscription's shared budget: a Prefect rate limit that mirrors ARM's
bucket, created on first use, which runs on every worker spend together."""

from __future__ import annotations

import logging
import time

import pytest
from prefect.client.orchestration import get_client

from flows.global_rollout import global_rollout
from flows.params import RolloutParams
from georep.emulator.client import EmulatorControl
from tasks.budget import BUCKETS, PrefectBudget, limit_name
from tasks.engine import get_engine
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


def test_later_runs_of_the_same_process_still_pay_the_shared_budget(
    registry: RegistryRef, control: EmulatorControl, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine outlives the run that created it; its shared budget must not hold on to that run's (closed)
    Prefect client, or every later run would silently fall back to the process's budget alone."""
    caplog.set_level(logging.WARNING, logger="georep.budget")
    for regions in ("[westeurope]", "[westeurope, uksouth]"):
        plan = (
            f"registry: {{subscription_id: {registry.subscription}, resource_group: {registry.resource_group}, "
            f"name: {registry.name}}}\nregions: {regions}\n"
        )
        state = global_rollout(RolloutParams(plan_yaml=plan), return_state=True)
        assert state.is_completed(), state.message
    engine = get_engine()
    for kind in ("reads", "writes"):
        limiter = engine.budgets.get(kind, registry.subscription)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while limiter._settling and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not [r for r in caplog.records if "budget" in r.getMessage()], [r.getMessage() for r in caplog.records]
    source = engine.budgets.source
    assert isinstance(source, PrefectBudget)
    assert source.fallbacks == 0
