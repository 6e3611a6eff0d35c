"""Prefect tasks of the DR drill that the replication tasks do not cover: reads that wait for a state, and the
restore. Writes still go through ``tasks.replication`` (and so the LRO engine); these only read, except
``drill_restore``, which drives the engine from the drill journal.

No Prefect retries on the readers: ``inventory`` already retries transient ARM errors, and a drill's deadline
must not be eaten by retry delays.
"""

from __future__ import annotations

import time
from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georep import drill, inventory
from georep.journal import DrillEntry, DrillJournal
from georep.model import ObservedReplica, RegistryRef
from tasks.engine import current_settings, get_engine

_journals: dict[str, DrillJournal] = {}


class DrillDeadline(TimeoutError):
    """The drill's max_duration_seconds ran out; the flow restores the original configuration."""


def get_journal() -> DrillJournal:
    """The process's drill journal, next to the checkpoints in GEOREP_STATE_DIR (shared by flow and hooks)."""
    path = current_settings().state_dir / "drills.db"
    journal = _journals.get(str(path))
    if journal is None:
        journal = _journals[str(path)] = DrillJournal(path)
    return journal


@task(name="replicas-read", task_run_name="read-{ref.name}", cache_policy=NO_CACHE)
def replicas_read(ref: RegistryRef, names: list[str], home: str) -> dict[str, ObservedReplica | None]:
    """GET each named replica (authoritative state; ``None`` = gone)."""
    engine = get_engine()
    with engine.client(ref.subscription_id) as client:
        return {n: inventory.read_replica(client, ref, n, home, engine.config.retry) for n in names}


@task(name="replica-wait", task_run_name="wait-{until}-{name}", cache_policy=NO_CACHE)
def replica_wait(
    ref: RegistryRef,
    name: str,
    home: str,
    until: Literal["succeeded", "ready"],
    deadline: float,
    poll_seconds: float,
) -> ObservedReplica:
    """Poll one replica until provisioningState Succeeded (or displayStatus Ready too), in short sleeps, so the
    drill's deadline (an absolute ``time.time()``) is honoured within one poll interval."""
    engine = get_engine()
    with engine.client(ref.subscription_id) as client:
        while True:
            current = inventory.read_replica(client, ref, name, home, engine.config.retry)
            if current is not None:
                state = current.provisioning_state.lower()
                if state == "failed":
                    raise RuntimeError(f"replica {name} ended Failed: {current.status_message or ''}".strip())
                if state == "succeeded" and (until == "succeeded" or (current.display_status or "") == "Ready"):
                    return current
            if time.time() + poll_seconds > deadline:
                raise DrillDeadline(
                    f"replica {name} not {until} before the drill's deadline "
                    f"(last: {current.provisioning_state if current else 'absent'}"
                    f"/{current.display_status if current else '-'})"
                )
            time.sleep(poll_seconds)


@task(name="drill-restore", task_run_name="restore-{entry.drill_id}", cache_policy=NO_CACHE)
def drill_restore(entry: DrillEntry, by: str) -> DrillEntry:
    """Put the targets back as the journal recorded them (safe to repeat: it reads before it writes)."""
    restored = drill.restore(get_engine(), get_journal(), entry, by)
    get_run_logger().warning(
        "drill %s restore %s by %s: %s", entry.drill_id, restored.restore, by, restored.restore_detail
    )
    return restored
