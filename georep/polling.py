"""How georep waits on many replication LROs at once without spending the ARM read budget.

The real ACR sends no Retry-After, so the SDK polls each LRO every ``polling_interval`` (30 s by default: a
12 s create is seen at 30 s). Polling every LRO fast instead would cost N reads per tick against a budget of
25 reads/s per subscription. georep splits the job:

* every SDK poller (``GuidedPolling``, a real ARMPolling) polls its own status URL only rarely (the fallback
  interval), and like every request of the process within its subscription's read budget (georep.budget);
* one watcher per registry (``PollGuide``) lists the registry's replications: one read reports the state of
  every replica, and a replica whose provisioningState left Creating/Updating/Deleting wakes its poller, which
  then confirms through its own status URL and finishes as the SDK always does.

Detection latency is therefore about one watch interval whatever the number of LROs, and reads grow with
registries, not with replicas. Lists can lag gets (ARO-HCP PR #2585): a lagging list only delays a wake-up to
the fallback poll, it never decides an outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from azure.core.polling.base_polling import get_retry_after  # type: ignore[attr-defined]
from azure.core.rest import HttpRequest
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.core.polling.arm_polling import ARMPolling

from georep.arm import API_VERSION
from georep.model import RegistryRef

log = logging.getLogger("georep.polling")

TRANSITIONAL = frozenset({"creating", "updating", "deleting"})


class PollingStopped(Exception):
    """Raised inside a poller thread when its LRO passed georep's deadline: ends the thread, not the LRO."""


@dataclass(eq=False)
class Ticket:
    """One LRO being waited on: the watcher wakes it, the engine stops it at the deadline."""

    registry: RegistryRef
    replica: str
    kind: str  # create | update | delete
    _wake: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False
    last_seen: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.stopped = True
        self._wake.set()

    def sleep(self, timeout: float, floor: float = 0.0) -> None:
        """Sleep until woken or ``timeout``; never less than ``floor`` (a server's Retry-After)."""
        start = time.monotonic()
        if floor > 0:
            end = start + floor
            while not self.stopped and time.monotonic() < end:
                time.sleep(min(0.05, end - time.monotonic()) if end > time.monotonic() else 0)
        remaining = timeout - (time.monotonic() - start)
        if remaining > 0 and not self.stopped:
            self._wake.wait(remaining)
        self._wake.clear()
        if self.stopped:
            raise PollingStopped(f"stopped waiting on {self.kind} of {self.replica}")


class GuidedPolling(ARMPolling):
    """ARMPolling whose sleeps end early when the watcher sees the replica settle. Its polls spend the read
    budget like every request of the client (``georep.budget.BudgetPolicy``). Everything else (status URLs,
    final GET, errors, continuation tokens) is the SDK's."""

    def __init__(self, ticket: Ticket, timeout: float, **kwargs: Any) -> None:
        super().__init__(timeout, **kwargs)
        self._ticket = ticket
        self._slept = False

    def _delay(self) -> None:
        self._slept = True
        server = get_retry_after(self._pipeline_response) or 0.0
        self._ticket.sleep(max(self._timeout, server), floor=server)

    def update_status(self) -> None:
        # azure-core polls once before its first sleep. The response that started (or, resumed, last described)
        # the operation already says it is running, and the watcher says when it ended, so that first poll could
        # only read "InProgress": skipping it saves one read per LRO (PUT, status, final GET instead of four).
        if not self._slept:
            return
        super().update_status()


def list_states(client: ContainerRegistryManagementClient, registry: RegistryRef) -> dict[str, str]:
    """name -> provisioningState (lower case) of every replica, from the raw LIST.

    The watcher needs two fields of each replica; deserializing whole SDK models for them cost more CPU than the
    request itself once hundreds of replicas are watched. The request still goes through the client's pipeline
    (auth, budget, hooks). Pages past the first follow ``nextLink``.
    """
    url: str | None = (
        f"/subscriptions/{quote(registry.subscription_id)}/resourceGroups/{quote(registry.resource_group)}"
        f"/providers/Microsoft.ContainerRegistry/registries/{quote(registry.name)}/replications"
        f"?api-version={API_VERSION}"
    )
    states: dict[str, str] = {}
    while url:
        response = client.send_request(HttpRequest("GET", url))
        response.raise_for_status()
        page = response.json()
        for item in page.get("value") or []:
            props = item.get("properties") or {}
            states[str(item.get("name", "")).lower()] = str(props.get("provisioningState") or "Succeeded").lower()
        url = page.get("nextLink")
    return states


class PollGuide:
    def __init__(
        self, client_factory: Callable[[str], ContainerRegistryManagementClient], watch_interval: float
    ) -> None:
        """``client_factory`` returns the process's shared client for a subscription (budgeted, see
        georep.budget); the guide never closes it."""
        self._factory = client_factory
        self._interval = watch_interval
        self._tickets: dict[RegistryRef, set[Ticket]] = {}
        self._threads: dict[RegistryRef, threading.Thread] = {}
        self._lock = threading.Lock()
        self.list_requests = 0

    def register(self, registry: RegistryRef, replica: str, kind: str) -> Ticket:
        ticket = Ticket(registry, replica.lower(), kind)
        with self._lock:
            self._tickets.setdefault(registry, set()).add(ticket)
            thread = self._threads.get(registry)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._watch, args=(registry,), name=f"georep-watch-{registry.name}",
                                          daemon=True)  # fmt: skip
                self._threads[registry] = thread
                thread.start()
        return ticket

    def unregister(self, ticket: Ticket) -> None:
        with self._lock:
            self._tickets.get(ticket.registry, set()).discard(ticket)

    def _pending(self, registry: RegistryRef) -> list[Ticket]:
        with self._lock:
            tickets = list(self._tickets.get(registry, ()))
            if not tickets:
                self._threads.pop(registry, None)
            return tickets

    def _watch(self, registry: RegistryRef) -> None:
        client = self._factory(registry.subscription_id)
        while tickets := self._pending(registry):
            try:
                listed = list_states(client, registry)
                self.list_requests += 1
            except Exception as exc:  # a failed look never decides anything; pollers fall back
                log.debug("watch list of %s failed: %s", registry.name, exc)
                listed = None
            if listed is not None:
                for ticket in tickets:
                    state = listed.get(ticket.replica, "absent")
                    if ticket.kind == "delete":
                        settled = state == "absent" or state not in TRANSITIONAL
                    else:
                        settled = state != "absent" and state not in TRANSITIONAL
                    if settled and ticket.last_seen != state:
                        ticket.last_seen = state
                        ticket.wake()
            time.sleep(self._interval)
