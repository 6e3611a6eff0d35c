"""How georep waits on many replication LROs at once without spending the ARM read budget.

The real ACR sends no Retry-After, so the SDK polls each LRO every ``polling_interval`` (30 s by default: a
12 s create is seen at 30 s). Polling every LRO fast instead would cost N reads per tick against a budget of
25 reads/s per subscription. georep splits the job:

* every SDK poller (``GuidedPolling``, a real ARMPolling) polls its own status URL only rarely (the fallback
  interval), and always within a process-wide read budget (``RateLimiter``);
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

from azure.core.polling.base_polling import get_retry_after  # type: ignore[attr-defined]
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.core.polling.arm_polling import ARMPolling

from georep.model import RegistryRef

log = logging.getLogger("georep.polling")

TRANSITIONAL = frozenset({"creating", "updating", "deleting"})


class PollingStopped(Exception):
    """Raised inside a poller thread when its LRO passed georep's deadline: ends the thread, not the LRO."""


class RateLimiter:
    """A blocking token bucket shared by every reader (or writer) of the process."""

    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1.0, per_second)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)


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
    """ARMPolling whose sleeps end early when the watcher sees the replica settle, and whose polls spend the
    shared read budget. Everything else (status URLs, final GET, errors, continuation tokens) is the SDK's."""

    def __init__(self, ticket: Ticket, budget: RateLimiter, timeout: float, **kwargs: Any) -> None:
        super().__init__(timeout, **kwargs)
        self._ticket = ticket
        self._budget = budget

    def _delay(self) -> None:
        server = get_retry_after(self._pipeline_response) or 0.0
        self._ticket.sleep(max(self._timeout, server), floor=server)
        self._budget.acquire()


class PollGuide:
    def __init__(
        self,
        client_factory: Callable[[str], ContainerRegistryManagementClient],
        budget: RateLimiter,
        watch_interval: float,
    ) -> None:
        self._factory = client_factory
        self._budget = budget
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
        try:
            while tickets := self._pending(registry):
                self._budget.acquire()
                try:
                    listed = {
                        str(r.name).lower(): str(
                            getattr(r.provisioning_state, "value", r.provisioning_state) or "Succeeded"
                        ).lower()
                        for r in client.replications.list(registry.resource_group, registry.name)
                    }
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
        finally:
            client.close()
