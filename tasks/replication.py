"""Prefect tasks: one Azure operation each, all through the LRO engine.

Prefect's own retries are a backstop for crashes of the task body only: ARM failures are already retried once by
the engine (tenacity), and a region that failed for good raises ``RegionError`` so its task run is Failed in the
UI while the flow still receives its outcome. Checkpoints make a Prefect retry (or a rerun of the flow) resume
the operation instead of writing again.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georep import inventory
from georep.config import Settings
from georep.lro import Engine
from georep.model import Action, ActionKind, ObservedReplica, RegionOutcome, RegistryInfo, RegistryRef
from tasks.engine import get_engine

_settings_lock = threading.Lock()
_settings: dict[tuple[tuple[str, str], ...], Settings] = {}


def _engine() -> Engine:
    """The process's engine (``tasks.engine.get_engine``) for the current GEOREP_* environment. Building the
    settings (pydantic-settings reads and validates every variable) cost more CPU than the rest of a no-op
    region task (measured: 14 % of a ``replica-leave`` task), so they are built once per distinct environment;
    the engine itself is still looked up every time (tests reset engines between runs)."""
    key = tuple(sorted((k.upper(), v) for k, v in os.environ.items() if k.upper().startswith("GEOREP_")))
    settings = _settings.get(key)
    if settings is None:
        with _settings_lock:
            settings = _settings.setdefault(key, Settings())
    return get_engine(settings)


class RegionError(Exception):
    """A region that failed for good. Carries the outcome so the flow can report it."""

    def __init__(self, outcome: RegionOutcome) -> None:
        super().__init__(
            f"{outcome.action.value} {outcome.region}: {outcome.error_code or 'failed'}: {outcome.error_message or ''}"
        )
        self.outcome = outcome


def _not_a_region_failure(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except (RegionError, inventory.RegistryNotFound):
        return False
    except Exception:
        return True
    return False


@task(
    name="registry-observe",
    task_run_name="observe-{ref.name}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_not_a_region_failure,
)
def registry_observe(ref: RegistryRef) -> tuple[RegistryInfo, list[ObservedReplica]]:
    """Read the registry and its replicas (list to discover, GET each for authoritative state). Reads only."""
    engine = _engine()
    with engine.client(ref.subscription_id) as client:
        info, observed = inventory.observe(client, ref, engine.config.retry)
    get_run_logger().info("observed registry=%s home=%s replicas=%d", ref.name, info.home, len(observed))
    return info, observed


def _apply(
    ref: RegistryRef, plan_hash: str, action: Action, dry_run: bool, run_id: str | None, deadline: float | None
) -> RegionOutcome:
    # the flow holds this region's concurrency slot (tasks.limits.write_slots) for the whole wave
    outcome = _engine().run(ref, plan_hash, action, dry_run=dry_run, run_id=run_id, deadline_seconds=deadline)
    get_run_logger().info(
        "registry=%s region=%s replication=%s action=%s result=%s state=%s seconds=%.2f requests=%d%s",
        ref.name,
        outcome.region,
        outcome.replication,
        outcome.action.value,
        outcome.result.value,
        outcome.provisioning_state,
        outcome.seconds,
        outcome.arm_requests,
        f" error={outcome.error_code}" if outcome.failed else "",
    )
    if outcome.failed:
        raise RegionError(outcome)
    return outcome


_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": 1,
    "retry_delay_seconds": 5,
    "retry_condition_fn": _not_a_region_failure,
}


@task(name="replica-ensure", task_run_name="{action.kind}-{action.region}", **_OPTIONS)
def replica_ensure(
    ref: RegistryRef,
    plan_hash: str,
    action: Action,
    dry_run: bool = False,
    run_id: str | None = None,
    deadline_seconds: float | None = None,
) -> RegionOutcome:
    """Make the replica exist as planned: create, recreate (Failed), replace, or wait out a transition."""
    return _apply(ref, plan_hash, action, dry_run, run_id, deadline_seconds)


@task(name="replica-update", task_run_name="update-{action.region}", **_OPTIONS)
def replica_update(
    ref: RegistryRef,
    plan_hash: str,
    action: Action,
    dry_run: bool = False,
    run_id: str | None = None,
    deadline_seconds: float | None = None,
) -> RegionOutcome:
    """PATCH tags and the endpoint flag; nothing else of a replica can change in place."""
    return _apply(ref, plan_hash, action, dry_run, run_id, deadline_seconds)


@task(name="replica-delete", task_run_name="delete-{action.region}", **_OPTIONS)
def replica_delete(
    ref: RegistryRef,
    plan_hash: str,
    action: Action,
    dry_run: bool = False,
    run_id: str | None = None,
    deadline_seconds: float | None = None,
) -> RegionOutcome:
    """Delete a replica and wait until its name is free again (consistent 404s)."""
    return _apply(ref, plan_hash, action, dry_run, run_id, deadline_seconds)


@task(name="replica-leave", task_run_name="{action.kind}-{action.region}", cache_policy=NO_CACHE)
def replica_leave(
    ref: RegistryRef,
    plan_hash: str,
    action: Action,
    dry_run: bool = False,
    run_id: str | None = None,
    deadline_seconds: float | None = None,
) -> RegionOutcome:
    """No ARM call: the region is in the plan's table as unchanged or skipped (the home replica)."""
    return _engine().run(ref, plan_hash, action, dry_run=dry_run, run_id=run_id)  # no ARM call: no deadline


def task_for(action: Action) -> Task[..., RegionOutcome]:
    if action.kind is ActionKind.UPDATE:
        return replica_update
    if action.kind is ActionKind.DELETE:
        return replica_delete
    if action.kind in (ActionKind.NOOP, ActionKind.SKIP_HOME):
        return replica_leave
    return replica_ensure
