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
from typing import Any, Literal, Protocol
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


BudgetKind = Literal["reads", "writes"]


class TokenSource(Protocol):
    """A budget shared beyond this process: ``take`` blocks until ``count`` request tokens of ``kind`` in
    ``subscription`` are granted. georep's Prefect layer implements it with global rate limits, so runs on
    several workers spend one subscription budget between them (tasks/budget.py)."""

    def take(self, kind: BudgetKind, subscription: str, count: int) -> None: ...


class RateLimiter:
    """A blocking token bucket shared by every reader (or writer) of the process.

    With a ``source``, every local token must also be backed by a token of the shared budget. Those are taken
    ``batch`` at a time: one call to the shared budget per batch of ARM requests, not one per request, because a
    round trip to it costs more than the ARM read it guards.
    """

    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        *,
        source: TokenSource | None = None,
        kind: BudgetKind = "reads",
        subscription: str = "",
        batch: int = 10,
    ) -> None:
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1.0, per_second)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._source = source
        self._kind: BudgetKind = kind
        self._subscription = subscription
        self._batch = max(1, batch)
        self._granted = 0
        self._grant_lock = threading.Lock()
        self.shared_calls = 0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    break
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)
        if self._source is not None:
            with self._grant_lock:
                if self._granted < 1:
                    self._source.take(self._kind, self._subscription, self._batch)
                    self.shared_calls += 1
                    self._granted += self._batch
                self._granted -= 1


class Budgets:
    """ARM counts requests per subscription (and principal), so the budgets are kept per subscription too: a
    fleet rollout in one process spends each subscription's reads and writes separately."""

    def __init__(
        self,
        reads_per_second: float,
        writes_per_second: float,
        read_burst: float,
        write_burst: float,
        source: TokenSource | None = None,
        read_batch: int = 10,
        write_batch: int = 5,
    ) -> None:
        self._spec = {
            "reads": (reads_per_second, read_burst, read_batch),
            "writes": (writes_per_second, write_burst, write_batch),
        }
        self._source = source
        self._limiters: dict[tuple[BudgetKind, str], RateLimiter] = {}
        self._lock = threading.Lock()

    def get(self, kind: BudgetKind, subscription: str) -> RateLimiter:
        key = (kind, subscription.lower())
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                rate, burst, batch = self._spec[kind]
                limiter = RateLimiter(rate, burst, source=self._source, kind=kind, subscription=key[1], batch=batch)
                self._limiters[key] = limiter
            return limiter

    def reads(self, subscription: str) -> RateLimiter:
        return self.get("reads", subscription)

    def writes(self, subscription: str) -> RateLimiter:
        return self.get("writes", subscription)

    def shared_calls(self) -> int:
        """Calls made to the shared budget (one per batch of tokens), for benchmarks."""
        with self._lock:
            return sum(limiter.shared_calls for limiter in self._limiters.values())


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


def list_states(
    client: ContainerRegistryManagementClient, registry: RegistryRef, budget: RateLimiter | None = None
) -> dict[str, str]:
    """name -> provisioningState (lower case) of every replica, from the raw LIST.

    The watcher needs two fields of each replica; deserializing whole SDK models for them cost more CPU than the
    request itself once hundreds of replicas are watched. The request still goes through the client's pipeline
    (auth, retries, hooks). Pages past the first follow ``nextLink``, each paid from ``budget``.
    """
    url: str | None = (
        f"/subscriptions/{quote(registry.subscription_id)}/resourceGroups/{quote(registry.resource_group)}"
        f"/providers/Microsoft.ContainerRegistry/registries/{quote(registry.name)}/replications"
        f"?api-version={API_VERSION}"
    )
    states: dict[str, str] = {}
    first = True
    while url:
        if budget is not None and not first:
            budget.acquire()
        first = False
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
        self,
        client_factory: Callable[[str], ContainerRegistryManagementClient],
        budgets: Budgets,
        watch_interval: float,
    ) -> None:
        """``client_factory`` returns the process's shared client for a subscription; the guide never closes it."""
        self._factory = client_factory
        self._budgets = budgets
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
        budget = self._budgets.reads(registry.subscription_id)
        while tickets := self._pending(registry):
            budget.acquire()
            try:
                listed = list_states(client, registry, budget)
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
