"""ARM budgets shared by every georep process, through Prefect global rate limits.

A Prefect global concurrency limit with slot decay is a token bucket: ``limit`` is its burst and
``slot_decay_per_second`` its refill. georep keeps one per subscription and kind that mirrors ARM's own bucket
with headroom (ARM: reads 250 / 25 per s, writes 200 / 10 per s; here reads 200 / 20, writes 160 / 8). Every
process backs its local ARM budget with it (``georep.budget.TokenSource``), so runs on any number of workers
cannot together send more than ARM grants the subscription: no 429 by construction, whatever the fleet size.

Latency matters (prefect-notes: a rate-limit call is an API round trip, and a denied one sleeps a
server-computed Retry-After). Tokens are therefore taken in batches (georep.budget), and the buckets are sized so
that a process is held back only when the subscription's budget really is spent.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.context import SettingsContext
from prefect.exceptions import ObjectAlreadyExists

from georep.budget import BudgetKind
from tasks import api

log = logging.getLogger("georep.budget")

#: (burst, refill per second) per kind, under ARM's per-subscription-and-principal buckets
BUCKETS: dict[BudgetKind, tuple[int, float]] = {"reads": (200, 20.0), "writes": (160, 8.0)}
#: a request waits at most this long for the shared budget before it is sent on the local budget alone
TAKE_TIMEOUT_SECONDS = 300.0


def limit_name(kind: BudgetKind, subscription: str) -> str:
    return f"georep-arm-{kind}-{subscription.lower()}"


class PrefectBudget:
    """``TokenSource`` on Prefect rate limits, created idempotently the first time a subscription is used.

    Requests are sent from threads Prefect did not start (SDK pollers, registry watchers), which do not see the
    flow's settings context. Only the settings of the engine's creator are kept (so the rate limits live on the
    same Prefect API as the runs), and every call runs in an otherwise empty context: the creator's whole context
    would also carry its flow run's client, which is closed once that run ends, while the engine serves every
    later run of the process.
    """

    def __init__(self, timeout_seconds: float = TAKE_TIMEOUT_SECONDS) -> None:
        self._settings = SettingsContext.get()
        self._timeout = timeout_seconds
        self._ensured: set[str] = set()
        self._lock = threading.Lock()
        #: calls that fell back to the process's budget alone (API unreachable, or no tokens in time)
        self.fallbacks = 0

    def take(self, kind: BudgetKind, subscription: str, count: int) -> None:
        contextvars.Context().run(self._take_in_settings, kind, subscription, count)

    def _take_in_settings(self, kind: BudgetKind, subscription: str, count: int) -> None:
        if self._settings is not None:
            SettingsContext.__var__.set(self._settings)  # a fresh context per call: nothing to reset
        self._take(kind, subscription, count)

    def _take(self, kind: BudgetKind, subscription: str, count: int) -> None:
        name = limit_name(kind, subscription)
        try:
            self._ensure(name, kind)
            self._pay(name, count)
        except TimeoutError:
            self.fallbacks += 1
            log.warning("the shared ARM %s budget of %s gave no tokens in %.0f s", kind, subscription, self._timeout)
        except Exception as exc:  # the Prefect API is unreachable: ARM's 429s are retried, a failed region is not
            self.fallbacks += 1
            log.warning("shared ARM %s budget unavailable (%s); using this process's budget only", kind, exc)

    def _pay(self, name: str, count: int) -> None:
        """Prefect's ``rate_limit``, one request at a time through ``api.write``: a denied
        payment waits out the server's Retry-After outside the gate. Strict: a missing limit is an error."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                response = api.write(
                    lambda client: client.increment_concurrency_slots(names=[name], slots=count, mode="rate_limit")
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                retry_after = float(exc.response.headers.get("Retry-After", 1.0))
            else:
                if not response.json():
                    raise ConcurrencySlotAcquisitionError(f"rate limit {name!r} does not exist")
                return
            if time.monotonic() + retry_after > deadline:
                raise TimeoutError(f"{count} token(s) of {name} not granted within {self._timeout:g} s")
            time.sleep(retry_after)

    def _ensure(self, name: str, kind: BudgetKind) -> None:
        with self._lock:
            if name in self._ensured:
                return
            burst, refill = BUCKETS[kind]

            def upsert(client: SyncPrefectClient) -> None:
                try:
                    client.upsert_global_concurrency_limit_by_name(name, burst, slot_decay_per_second=refill)
                except ObjectAlreadyExists:  # another process created it between the upsert's read and create
                    client.upsert_global_concurrency_limit_by_name(name, burst, slot_decay_per_second=refill)

            api.write(upsert)
            self._ensured.add(name)
