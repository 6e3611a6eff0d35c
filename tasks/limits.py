"""Prefect global concurrency limits that bound ARM writes across runs, processes and workers.

Limits are created idempotently when a flow starts (``ensure``) and always taken with ``strict=True``: Prefect's
default (strict=False) silently does not limit when the limit is missing, which is the failure nobody notices.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse, MinimalConcurrencyLimitResponse
from prefect.concurrency._events import emit_concurrency_acquisition_events, emit_concurrency_release_events
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.exceptions import ObjectAlreadyExists

from georep.holders import Holders
from georep.model import RegistryRef
from tasks import api
from tasks.engine import current_settings

log = logging.getLogger("georep.limits")
#: a holder refreshes its heartbeat this often; other hosts consider it dead after Holders.stale_seconds
HEARTBEAT_SECONDS = 60.0
#: the first wait is short: when the slots are still taken, leaked slots are recovered before waiting out the rest
FIRST_TRY_SECONDS = 1.0
#: pause between two attempts to take slots (doubling up to the maximum)
RETRY_PAUSE_SECONDS = (0.1, 2.0)

#: LROs in flight per registry and per subscription across all runs (GEOREP_REGISTRY_WRITE_LIMIT and
#: GEOREP_SUBSCRIPTION_WRITE_LIMIT override). ACR documents no limit of its own; 20 lets a 20-region rollout go out
#: in one wave. Per subscription, 100 LROs in flight (five such registries at once) is half of ARM's write burst
#: (200); an LRO in flight costs no writes and, with the registry watchers, few reads (see georep.budget).
DEFAULT_REGISTRY_LIMIT = int(os.environ.get("GEOREP_REGISTRY_WRITE_LIMIT", "20"))
DEFAULT_SUBSCRIPTION_LIMIT = int(os.environ.get("GEOREP_SUBSCRIPTION_WRITE_LIMIT", "100"))
#: How long a wave waits for its write slots (GEOREP_SLOT_WAIT_SECONDS overrides). Prefect waits forever by
#: default, and a slot leaked by a killed run is never given back on an ephemeral server (no lease reaper), so
#: the next run would hang without a word. On a real server the lease (300 s) expires well within this wait.
DEFAULT_SLOT_WAIT_SECONDS = 900.0


class SlotsUnavailable(RuntimeError):
    """The write slots could not be taken in time: most likely leaked by a run that was killed."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def registry_limit(ref: RegistryRef) -> str:
    return f"georep-registry-{_slug(ref.subscription_id)}-{_slug(ref.resource_group)}-{_slug(ref.name)}"


def subscription_limit(ref: RegistryRef) -> str:
    return f"georep-subscription-{_slug(ref.subscription_id)}"


#: (limit name, size) pairs this process created or resized
_ensured: set[tuple[str, int]] = set()


def ensure(
    ref: RegistryRef,
    per_registry: int = DEFAULT_REGISTRY_LIMIT,
    per_subscription: int = DEFAULT_SUBSCRIPTION_LIMIT,
    *,
    force: bool = False,
) -> tuple[str, str]:
    """Create (or resize) the registry's and the subscription's write limits; safe to call from every run. Once
    per process and sizes: a process that runs many flows (a served deployment, the bench) does not read them
    again, and ``write_slots`` ensures them afresh if they were deleted since."""
    names = (registry_limit(ref), subscription_limit(ref))
    wanted = ((names[0], per_registry), (names[1], per_subscription))
    if not force and all(item in _ensured for item in wanted):
        return names
    for name, limit in wanted:
        api.write(lambda client, name=name, limit=limit: upsert(client, name, limit))
    _ensured.update(wanted)
    return names


def upsert(client: SyncPrefectClient, name: str, limit: int) -> None:
    """Prefect's upsert reads, then creates: two runs starting together (a fleet's children) race, and the second
    create gets 409. The limit exists then; make sure it has our size."""
    try:
        client.upsert_global_concurrency_limit_by_name(name, limit)
    except ObjectAlreadyExists:
        client.upsert_global_concurrency_limit_by_name(name, limit)


#: a lease the server keeps for a holder that stops renewing it (a killed run): its slots come back after this long
LEASE_SECONDS = 300.0


class Lease:
    """Slots of one or more strict global concurrency limits, held under one server lease.

    The server returns the slots when ``release`` is called, or by itself once the lease has not been renewed for
    ``LEASE_SECONDS`` (a real server's lease reaper; an ephemeral server has none, see ``recover_leaked``).
    ``renew`` is called by the holder's heartbeat. A failed renewal is logged and retried at the next heartbeat
    rather than interrupting the run: with LROs in flight, stopping the run mid-wait would abandon work that a
    later run only resumes, while the lease outlives several missed heartbeats."""

    def __init__(self, names: list[str], slots: int, lease_id: UUID, limits: list[MinimalConcurrencyLimitResponse]):
        self.names, self.slots, self.lease_id, self.limits = names, slots, lease_id, limits
        self._events = emit_concurrency_acquisition_events(limits, slots)  # the UI's event feed, as Prefect does

    def renew(self) -> None:
        try:
            api.write(lambda client: client.renew_concurrency_lease(self.lease_id, LEASE_SECONDS))
        except Exception:
            log.error(
                "could not renew the lease on %s; retrying at the next heartbeat (the server keeps a lease %g s)",
                ", ".join(self.names),
                LEASE_SECONDS,
                exc_info=True,
            )

    def release(self) -> None:
        api.write(lambda client: client.release_concurrency_slots_with_lease(self.lease_id))
        emit_concurrency_release_events(self.limits, self.slots, self._events)


def take(names: list[str], slots: int) -> Lease | None:
    """One attempt at ``slots`` of every limit in ``names``: the lease, or None when the server refuses because
    the slots are taken (423). Strict: a limit that does not exist is an error, never a silent pass (Prefect's own
    strict mode only refuses when *none* of the limits exist)."""
    try:
        response = api.write(
            lambda client: client.increment_concurrency_slots_with_lease(
                names=names, slots=slots, mode="concurrency", lease_duration=LEASE_SECONDS
            )
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 423:
            return None
        raise ConcurrencySlotAcquisitionError(f"Unable to acquire concurrency slots on {names!r}: {exc}") from exc
    granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
    missing = sorted(set(names) - {limit.name for limit in granted.limits})
    if missing:
        if granted.limits:
            api.write(lambda client: client.release_concurrency_slots_with_lease(granted.lease_id))
        raise ConcurrencySlotAcquisitionError(f"Concurrency limits {missing!r} must be created before acquiring slots")
    return Lease(names, slots, granted.lease_id, granted.limits)


def acquire(names: list[str], slots: int, timeout_seconds: float) -> Lease:
    """Take ``slots`` of every limit in ``names`` (strict) and return the lease, or raise ``TimeoutError`` after
    ``timeout_seconds``.

    The waiting happens between requests, never during one: in Prefect 3.9 a client-side timeout that fires while
    the server is granting the slots drops the grant without releasing it, so the slots stay taken until their
    lease expires (under load a fleet's children leaked their registry locks that way). The server answers 423 at
    once when the slots are taken."""
    deadline = time.monotonic() + timeout_seconds
    pause = RETRY_PAUSE_SECONDS[0]
    while True:
        lease = take(names, slots)
        if lease is not None:
            return lease
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{slots} slot(s) of {', '.join(names)} not free within {timeout_seconds:g} s")
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, RETRY_PAUSE_SECONDS[1])


@contextmanager
def write_slots(
    ref: RegistryRef,
    occupy: int,
    per_registry: int = DEFAULT_REGISTRY_LIMIT,
    per_subscription: int = DEFAULT_SUBSCRIPTION_LIMIT,
    timeout_seconds: float | None = None,
) -> Iterator[int]:
    """Hold ``occupy`` slots of the registry's and the subscription's limits while a wave runs that many LROs at
    once. Taken once per wave, not once per task: every acquisition is a server round trip, and on SQLite a
    burst of them meets "database is locked" retries measured in seconds. Yields the slots actually held
    (never more than a limit, or the acquisition could never succeed)."""
    slots = max(1, min(occupy, per_registry, per_subscription))
    names = [registry_limit(ref), subscription_limit(ref)]
    wait = timeout_seconds if timeout_seconds is not None else _slot_wait_seconds()
    with ExitStack() as stack:
        try:
            try:
                stack.enter_context(hold(names, slots, wait, purpose=f"write slots for {ref.name}"))
            except ConcurrencySlotAcquisitionError:  # deleted since this process ensured them: create them again
                ensure(ref, per_registry, per_subscription, force=True)
                stack.enter_context(hold(names, slots, wait, purpose=f"write slots for {ref.name}"))
        except TimeoutError as exc:  # only the acquisition: a TimeoutError of the wave itself passes through
            raise SlotsUnavailable(
                f"no {slots} free write slot(s) on {' / '.join(names)} after {wait:g} s. If no other georep run "
                f"is writing to this registry, a killed run leaked them; free them with "
                f"`prefect gcl update {names[0]} --active-slots 0` (and the same for {names[1]} if it is full), "
                "then rerun: checkpoints make the rerun resume, not write twice"
            ) from exc
        yield slots


def _slot_wait_seconds() -> float:
    return float(os.environ.get("GEOREP_SLOT_WAIT_SECONDS", DEFAULT_SLOT_WAIT_SECONDS))


LOCK_TIMEOUT_SECONDS = 5.0


class RegistryBusy(RuntimeError):
    """Another georep run holds the registry's write lock."""


def lock_name(ref: RegistryRef) -> str:
    return f"georep-lock-{_slug(ref.subscription_id)}-{_slug(ref.resource_group)}-{_slug(ref.name)}"


@contextmanager
def registry_lock(ref: RegistryRef, purpose: str, timeout_seconds: float = LOCK_TIMEOUT_SECONDS) -> Iterator[str]:
    """One writing run per registry at a time (rollout, DR setup, cleanup, drill), across runs, processes and
    workers: a strict limit of 1 held from observation to the last write, so two runs never plan from the same
    state and then interleave conflicting writes. A second run is refused after ``timeout_seconds`` with a
    message that says what to do, rather than queueing silently behind a run that may take half an hour."""
    name = lock_name(ref)
    acquired = hold([name], 1, timeout_seconds, purpose=f"{purpose} of {ref.name}")
    try:
        try:
            acquired.__enter__()
        except ConcurrencySlotAcquisitionError:
            # the registry's first writing run: create the limit, then take it. Taking it first saves a read of
            # the limit on every later run (strict=True refuses a missing limit; it never passes silently)
            api.write(lambda client: upsert(client, name, 1))
            acquired = hold([name], 1, timeout_seconds, purpose=f"{purpose} of {ref.name}")
            acquired.__enter__()
    except TimeoutError as exc:
        raise RegistryBusy(
            f"another georep run is changing registry '{ref.name}' ({purpose} refused: concurrency limit '{name}' "
            "is held). Wait for it to finish; if its process died, free the slot with "
            f"`prefect gcl update {name} --active-slots 0`"
        ) from exc
    try:
        yield name
    finally:
        acquired.__exit__(None, None, None)


def _holders() -> Holders:
    return Holders(current_settings().state_dir / "holders.db")


def recover_leaked(names: list[str], holders: Holders | None = None) -> int:
    """Give back the slots of holders whose process is dead; returns how many slots were returned."""
    holders = holders or _holders()
    dead = holders.dead(names)
    if not dead:
        return 0
    returned = 0
    for name in names:
        leaked = sum(h.slots for h in dead if name in h.names)
        if not leaked:
            continue

        def give_back(client: SyncPrefectClient, name: str = name, leaked: int = leaked) -> None:
            limit = client.read_global_concurrency_limit_by_name(name)
            active = max(0, limit.active_slots - leaked)
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=active))

        api.write(give_back)
        returned += leaked
    holders.forget([h.token for h in dead])
    for h in dead:
        log.warning(
            "returned %d slot(s) of %s leaked by a run that died (%s, pid %d on %s)",
            h.slots,
            ", ".join(h.names),
            h.purpose or "unknown purpose",
            h.pid,
            h.host,
        )
    return returned


@contextmanager
def hold(names: list[str], slots: int, timeout_seconds: float, purpose: str | None = None) -> Iterator[None]:
    """``prefect.concurrency.sync.concurrency(strict=True)`` that records its holding (georep.holders) and, when
    the slots are not free, first returns slots leaked by dead processes, then waits out ``timeout_seconds``."""
    holders = _holders()
    started = time.monotonic()
    try:
        try:
            acquired = acquire(names, slots, min(FIRST_TRY_SECONDS, timeout_seconds))
        except TimeoutError:
            recover_leaked(names, holders)
            remaining = max(0.1, timeout_seconds - (time.monotonic() - started))
            acquired = acquire(names, slots, remaining)
        token = holders.add(names, slots, purpose)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                holders.beat(token)
                acquired.renew()

        beat = threading.Thread(target=heartbeat, name="georep-slot-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            holders.remove(token)
            acquired.release()
    finally:
        holders.close()
